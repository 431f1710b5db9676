// The dashboard as a person sees it: Debian's chromium, headless, driven by playwright-core.
//
//   node tools/dashboard_browser.mjs --url http://127.0.0.1:8080 --user it-01 \
//        --device qr-0001 --screenshot fleet.png        (the password in $CCCD_WEB_PASSWORD)
//
// Logs in through the login form, opens the fleet page from the navigation, and prints one JSON
// line: what the page says about the devices online (the card "Trực tuyến"), the time its figures
// are of (Unix seconds) and, for --device, that row's state and uptime today as shown. The
// screenshot is of the whole fleet page.
// Exit status 1, with the reason on stderr, when a step fails.

import { chromium } from "playwright-core";
import { parseArgs } from "node:util";

const { values: opts } = parseArgs({
  options: {
    url: { type: "string" },
    user: { type: "string" },
    device: { type: "string" },
    screenshot: { type: "string" },
    chromium: { type: "string", default: "/usr/bin/chromium" },
    timeout: { type: "string", default: "15000" },
  },
});
const password = process.env.CCCD_WEB_PASSWORD ?? "";
if (!opts.url || !opts.user || !password) {
  console.error("usage: --url URL --user NAME [--device ID] [--screenshot PNG], password in $CCCD_WEB_PASSWORD");
  process.exit(64);
}

const browser = await chromium.launch({
  executablePath: opts.chromium,
  args: ["--no-sandbox"], // the tests run as root, where chromium's sandbox cannot start
  headless: true,
});
try {
  const page = await browser.newPage({ viewport: { width: 1500, height: 900 }, locale: "vi-VN" });
  page.setDefaultTimeout(Number(opts.timeout));
  await page.goto(opts.url + "/fleet");
  if (!page.url().includes("/login")) throw new Error(`not sent to the login page: ${page.url()}`);
  await page.getByLabel("Tên đăng nhập").fill(opts.user);
  await page.getByLabel("Mật khẩu").fill(password);
  await Promise.all([page.waitForURL("**/fleet"), page.getByRole("button", { name: "Đăng nhập" }).click()]);
  await page.getByRole("link", { name: "Thiết bị" }).click();
  await page.waitForURL("**/fleet");

  const card = page.locator("#online-count");
  const seen = {
    title: await page.title(),
    generated: Number(await page.locator("#generated").getAttribute("data-ts")),
    onlineText: (await card.textContent()).trim(),
    online: Number(await card.getAttribute("data-online")),
    total: Number(await card.getAttribute("data-total")),
    rows: await page.locator("table.fleet tbody tr").count(),
  };
  if (opts.device) {
    const row = page.locator(`table.fleet tbody tr[data-device="${opts.device}"]`);
    seen.device = {
      state: (await row.locator(".state").textContent()).trim(),
      uptimeToday: (await row.locator("td.uptime-day").textContent()).trim(),
      uptimeTodayValue: Number(await row.locator("td.uptime-day").getAttribute("data-value")),
      uptime30: (await row.locator("td.uptime-window").textContent()).trim(),
    };
  }
  if (opts.screenshot) await page.screenshot({ path: opts.screenshot, fullPage: true });
  process.stdout.write(JSON.stringify(seen) + "\n");
} catch (err) {
  console.error(`dashboard_browser: ${err.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
