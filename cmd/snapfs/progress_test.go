package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestTimeLeft(t *testing.T) {
	for _, c := range []struct {
		s    progressStep
		want time.Duration
		ok   bool
	}{
		{progressStep{Done: 0, Total: 100, Elapsed: time.Second}, 0, false},
		{progressStep{Done: 10, Total: 0, Elapsed: time.Second}, 0, false},
		{progressStep{Done: 25, Total: 100, Elapsed: 10 * time.Second}, 30 * time.Second, true},
		{progressStep{Done: 100, Total: 100, Elapsed: 10 * time.Second}, 0, true},
		// Bytes win over units when their total is known.
		{progressStep{Done: 90, Total: 100, Bytes: 1 << 20, BytesTotal: 4 << 20, Elapsed: 2 * time.Second}, 6 * time.Second, true},
		{progressStep{Done: 5, Total: 10, Bytes: 0, BytesTotal: 4 << 20, Elapsed: 2 * time.Second}, 0, false},
	} {
		got, ok := timeLeft(c.s)
		if ok != c.ok || got != c.want {
			t.Errorf("timeLeft(%+v) = %v %v, want %v %v", c.s, got, ok, c.want, c.ok)
		}
	}
}

func TestFormatLeft(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                               "0s",
		1400 * time.Millisecond:         "1s",
		59 * time.Second:                "59s",
		61 * time.Second:                "1m01s",
		59*time.Minute + 59*time.Second: "59m59s",
		2*time.Hour + 5*time.Minute + 40*time.Second: "2h06m",
	} {
		if got := formatLeft(d); got != want {
			t.Errorf("formatLeft(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestProgressLine(t *testing.T) {
	var out bytes.Buffer
	p := &progressLine{name: "scrub", out: &out}
	p.draw(progressStep{Done: 50, Total: 200, Unit: "chunks", Bytes: 50 << 20, Elapsed: 5 * time.Second, Extra: "0 bad"})
	want := "\rscrub:  25.0%  50/200 chunks  50 MiB  10 MiB/s  15s left  0 bad"
	if out.String() != want {
		t.Errorf("first line %q, want %q", out.String(), want)
	}
	// Within 100 ms: not redrawn, unless done.
	p.draw(progressStep{Done: 60, Total: 200, Unit: "chunks", Elapsed: 6 * time.Second})
	if strings.Count(out.String(), "\r") != 1 {
		t.Errorf("redrawn within 100ms: %q", out.String())
	}
	p.draw(progressStep{Done: 200, Total: 200, Unit: "chunks", Bytes: 200 << 20, Elapsed: 20 * time.Second})
	last := out.String()[strings.LastIndex(out.String(), "\r"):]
	if !strings.HasPrefix(last, "\rscrub: 100.0%  200/200 chunks  200 MiB  10 MiB/s  0s left") || len(last) != len(want) {
		t.Errorf("last line %q: want it done and padded to %d", last, len(want))
	}
	p.end()
	if !strings.HasSuffix(out.String(), "\n") {
		t.Error("end did not end the line")
	}
	var nilLine *progressLine
	nilLine.draw(progressStep{Done: 1})
	nilLine.end()
}
