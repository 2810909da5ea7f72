package store

import (
	"fmt"
	"testing"
)

// TestFsckProgress checks the progress of fsck's pack scan: monotonic,
// at least one report per scan, and the last one matching the report
// (no leaks: every record scanned is one the metadata names).
func TestFsckProgress(t *testing.T) {
	for _, c := range []struct {
		files, size int
	}{
		{0, 0},
		{3, 100 << 10},
		{40, 300 << 10}, // more than scanReportEvery records
	} {
		t.Run(fmt.Sprintf("%d files of %d bytes", c.files, c.size), func(t *testing.T) {
			s, v := NewTestStore(t, 2, Options{})
			for i := 0; i < c.files; i++ {
				writeTestFile(t, s, v, fmt.Sprintf("f%d", i), randBytes(c.size))
			}
			var seen []ScanProgress
			r, err := s.Fsck(FsckOptions{Progress: func(p ScanProgress) { seen = append(seen, p) }})
			if err != nil {
				t.Fatal(err)
			}
			if len(seen) < 2 {
				t.Fatalf("%d progress reports, want the first and the last at least", len(seen))
			}
			for i := 1; i < len(seen); i++ {
				if seen[i].Records < seen[i-1].Records || seen[i].Bytes < seen[i-1].Bytes || seen[i].Elapsed < seen[i-1].Elapsed {
					t.Fatalf("progress went back: %+v then %+v", seen[i-1], seen[i])
				}
			}
			last := seen[len(seen)-1]
			if last.Records != r.Records || last.Records != last.Expected || last.Bytes != last.ExpectedBytes {
				t.Errorf("last progress %+v, report %d records", last, r.Records)
			}
			if want := int64(c.files * ((c.size + 127<<10) / (128 << 10))); c.size > 0 && last.Expected < want {
				t.Errorf("expected %d records, want at least %d (one per chunk)", last.Expected, want)
			}
		})
	}
}
