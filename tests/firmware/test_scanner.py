"""Frame assembly from a GM65-class UART QR scanner (firmware/scanner.py), with a UART stand-in."""

from fwcheck import FakeUART, raises

from firmware.scanner import Scanner

CODE = b"001099012345|123456789|Nguy\xe1\xbb\x85n V\xc4\x83n A|01011990|Nam|Ha Noi|01012021"


def test_frames_split_and_joined_across_reads():
    uart = FakeUART()
    sc = Scanner(uart)
    assert sc.poll(0) == []  # nothing on the line
    uart.send(CODE[:10])
    assert sc.poll(10) == []
    uart.send(CODE[10:] + b"\rSECOND\rTHI")
    assert sc.poll(20) == [CODE, b"SECOND"]
    uart.send(b"RD\r\r")  # an empty frame is no frame
    assert sc.poll(30) == [b"THIRD"]
    assert sc.frames == 3 and sc.torn == 0


def test_configurable_terminator():
    uart = FakeUART()
    sc = Scanner(uart, terminator=b"\r\n")
    uart.send(b"A\rB\r\nC\r")
    assert sc.poll(0) == [b"A\rB"]
    uart.send(b"\n")
    assert sc.poll(1) == [b"C"]
    raises(ValueError, Scanner, uart, b"")


def test_a_torn_frame_times_out_and_the_next_is_whole():
    uart = FakeUART()
    sc = Scanner(uart, gap_ms=200)
    uart.send(CODE[:30])  # the cable pulled in the middle
    assert sc.poll(1000) == []
    assert sc.poll(1150) == [] and sc.torn == 0  # still within the gap
    assert sc.poll(1201) == [] and sc.torn == 1  # the gap passed: dropped, counted
    uart.send(CODE + b"\r")
    assert sc.poll(1300) == [CODE]
    uart.send(b"tail-of-something")
    assert sc.poll(2000) == []
    uart.send(b"NEW\r")  # arriving after a long silence: the old bytes go, the new frame stays
    assert sc.poll(3000) == [b"NEW"] and sc.torn == 2


def test_an_oversize_frame_is_dropped_up_to_its_terminator():
    uart = FakeUART()
    sc = Scanner(uart, max_frame=64)
    uart.send(b"x" * 64 + b"\r")  # exactly the limit: accepted
    uart.send(b"y" * 300 + b"\rNEXT\r")
    assert sc.poll(0) == [b"x" * 64, b"NEXT"]
    assert sc.oversize == 1
    sc2 = Scanner(uart, terminator=b"\r\n", max_frame=8)
    uart.send(b"z" * 9 + b"\r\n" + b"OK\r\n")
    assert sc2.poll(0) == [b"OK"] and sc2.oversize == 1


def test_the_same_code_within_the_window_is_one_read():
    uart = FakeUART()
    sc = Scanner(uart, repeat_ms=3000)
    for t in (0, 1000, 2500, 5000):  # held in front of the scanner: seen every 1-2.5 s
        uart.send(CODE + b"\r")
        got = sc.poll(t)
        assert got == ([CODE] if t == 0 else []), t
    assert sc.repeats == 3
    uart.send(CODE + b"\r")
    assert sc.poll(8001) == [CODE]  # more than 3 s after the last sighting: a new visit
    uart.send(b"OTHER\r" + CODE + b"\r")  # another card in between: both are reads
    assert sc.poll(8100) == [b"OTHER", CODE]
    assert sc.frames == 4
