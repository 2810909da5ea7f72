package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/snapfs/snapfs/store"
)

// progressLine is the one line a long command (pool scrub, pool
// remove-member, pool repack, fsck, pool import) redraws on stderr while it runs: how far it
// is, its rate and the time left. It is drawn only on a terminal and never
// with --json, so that a pipe or a program reading the JSON gets the
// result alone. A nil *progressLine draws nothing.
type progressLine struct {
	name  string // the command, as the line starts: "scrub"
	out   io.Writer
	last  time.Time // when it was last drawn
	width int       // of the longest line drawn, to blank what a shorter one leaves
}

// newProgressLine returns the progress line of command name, or nil when
// stderr is not a terminal or the output is JSON.
func newProgressLine(name string, asJSON bool) *progressLine {
	if asJSON || !isTerminal(os.Stderr) {
		return nil
	}
	return &progressLine{name: name, out: os.Stderr}
}

// progressStep is one reading of a long operation's counts.
type progressStep struct {
	Done, Total int64  // units handled, and to handle (Total 0: unknown)
	Unit        string // "chunks", "records"
	// Bytes and BytesTotal are the payload handled and to handle
	// (BytesTotal 0: unknown; the time left then comes from the units).
	Bytes, BytesTotal int64
	Elapsed           time.Duration
	Extra             string // the command's own counts: "2 bad  1 repaired"
}

// draw redraws the line with s, at most ten times a second unless the
// operation is done.
func (p *progressLine) draw(s progressStep) {
	if p == nil {
		return
	}
	finished := s.Total > 0 && s.Done == s.Total
	if !finished && time.Since(p.last) < 100*time.Millisecond {
		return
	}
	p.last = time.Now()
	line := p.name + ": " + formatProgress(s)
	if n := len(line); n > p.width {
		p.width = n
	}
	fmt.Fprintf(p.out, "\r%-*s", p.width, line)
}

// end moves past the line, if one was drawn.
func (p *progressLine) end() {
	if p != nil && p.width > 0 {
		fmt.Fprintln(p.out)
	}
}

// formatProgress is the text of a progress line: percent, counts, bytes,
// rate, time left and the command's own counts.
func formatProgress(s progressStep) string {
	var parts []string
	if s.Total > 0 {
		parts = append(parts, fmt.Sprintf("%5.1f%%", 100*float64(min(s.Done, s.Total))/float64(s.Total)),
			fmt.Sprintf("%d/%d %s", s.Done, s.Total, s.Unit))
	} else {
		parts = append(parts, fmt.Sprintf("%d %s", s.Done, s.Unit))
	}
	if s.BytesTotal > 0 {
		parts = append(parts, ibytes(s.Bytes)+" of "+ibytes(s.BytesTotal))
	} else {
		parts = append(parts, ibytes(s.Bytes))
	}
	parts = append(parts, ibytes(rate(s.Bytes, s.Elapsed))+"/s")
	if left, ok := timeLeft(s); ok {
		parts = append(parts, formatLeft(left)+" left")
	}
	if s.Extra != "" {
		parts = append(parts, s.Extra)
	}
	return strings.Join(parts, "  ")
}

// timeLeft estimates the time to finish at the rate so far: by bytes when
// their total is known, else by units. It knows nothing before the first
// unit and nothing without a total.
func timeLeft(s progressStep) (time.Duration, bool) {
	done, total := s.Done, s.Total
	if s.BytesTotal > 0 {
		done, total = s.Bytes, s.BytesTotal
	}
	if total <= 0 || done <= 0 || s.Elapsed <= 0 {
		return 0, false
	}
	if done >= total {
		return 0, true
	}
	return time.Duration(float64(s.Elapsed) * float64(total-done) / float64(done)), true
}

// formatLeft rounds a time left to what a reader wants: seconds under a
// minute, then minutes and seconds, then hours and minutes.
func formatLeft(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Round(time.Second)/time.Second))
	case d < time.Hour:
		d = d.Round(time.Second)
		return fmt.Sprintf("%dm%02ds", int(d/time.Minute), int(d%time.Minute/time.Second))
	}
	d = d.Round(time.Minute)
	return fmt.Sprintf("%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
}

// scanProgress returns the progress callback of a pack scan (fsck, pool
// import) drawing line (nil: none).
func scanProgress(line *progressLine) func(store.ScanProgress) {
	if line == nil {
		return nil
	}
	return func(p store.ScanProgress) {
		line.draw(progressStep{Done: p.Records, Total: p.Expected, Unit: "records", Bytes: p.Bytes,
			BytesTotal: p.ExpectedBytes, Elapsed: p.Elapsed})
	}
}
