// Runs one job under the MicroPython WebAssembly port; driven by tools/micropython.py.
//
//   node mpy_driver.mjs <path of micropython.mjs>  < job.json
//
// The job (JSON on stdin): {"heapsize": int, "pystack": int, "files": [[path, text], ...],
// "sys_path": [dir, ...], "code": str}. The driver writes the files into the MicroPython
// filesystem (MEMFS), puts sys_path right after '' on sys.path, and runs the code.
//
// Its stdout is the protocol, one JSON object per line, written as they happen, so that a
// killed run (timeout) still leaves everything printed until then:
//   {"event": "ready", "load_ms": float}                       the port is loaded
//   {"event": "out", "stream": "stdout"|"stderr", "text": str} output of the Python program
//                                                             (a whole line with its "\n", or
//                                                             the unterminated rest at the end)
//   {"event": "done", "run_ms": float, "error": str|null, "error_type": str|null,
//    "crashed": bool}                                          the code has finished
// "error" is the traceback of an uncaught Python exception; "crashed" means the port itself
// failed (a JavaScript/WebAssembly error), with its stack as "error".

import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

function emit(obj) {
    // Writes to a pipe are synchronous in node on Linux: nothing is lost if we are killed later.
    process.stdout.write(JSON.stringify(obj) + "\n");
}

function lineStream(name) {
    const decoder = new TextDecoder();
    let bytes = [];
    return {
        put(data) {
            for (const byte of data) {
                bytes.push(byte);
                if (byte === 10) {
                    this.flush();
                }
            }
        },
        flush() {
            if (bytes.length) {
                emit({ event: "out", stream: name, text: decoder.decode(new Uint8Array(bytes)) });
                bytes = [];
            }
        },
    };
}

function mkdirs(FS, dir) {
    let path = "";
    for (const part of dir.split("/").filter((p) => p)) {
        path += "/" + part;
        if (!FS.analyzePath(path).exists) {
            FS.mkdir(path);
        }
    }
}

async function main() {
    const [modulePath] = process.argv.slice(2);
    if (!modulePath) {
        throw new Error("usage: node mpy_driver.mjs <path of micropython.mjs> < job.json");
    }
    const job = JSON.parse(readFileSync(0, "utf8"));
    const stdout = lineStream("stdout");
    const stderr = lineStream("stderr");

    const t0 = performance.now();
    const { loadMicroPython } = await import(pathToFileURL(modulePath).href);
    const mp = await loadMicroPython({
        heapsize: job.heapsize,
        pystack: job.pystack,
        linebuffer: false,
        stdout: (data) => stdout.put(data),
        stderr: (data) => stderr.put(data),
    });
    emit({ event: "ready", load_ms: performance.now() - t0 });

    for (const [path, text] of job.files) {
        mkdirs(mp.FS, path.slice(0, path.lastIndexOf("/")));
        mp.FS.writeFile(path, text);
    }
    const setup =
        "def _cccd_setup():\n" +
        "    import sys\n" +
        "    for p in reversed(" + JSON.stringify(job.sys_path) + "):\n" +
        "        sys.path.insert(1, p)\n" +
        "_cccd_setup()\n" +
        "del _cccd_setup\n";

    const t1 = performance.now();
    let error = null;
    let errorType = null;
    let crashed = false;
    try {
        mp.runPython(setup);
        mp.runPython(job.code);
    } catch (e) {
        if (e && e.constructor && e.constructor.name === "PythonError") {
            error = e.message;
            errorType = e.type ?? null;
        } else {
            error = String((e && e.stack) || e);
            errorType = (e && e.constructor && e.constructor.name) || "Error";
            crashed = true;
        }
    }
    stdout.flush();
    stderr.flush();
    emit({ event: "done", run_ms: performance.now() - t1, error, error_type: errorType, crashed });
}

main().then(
    // Exit explicitly: a Python program may leave timers behind (asyncio) that keep node alive.
    () => process.exit(0),
    (e) => {
        process.stderr.write(String((e && e.stack) || e) + "\n");
        process.exit(2);
    },
);
