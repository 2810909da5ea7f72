package stream

import "errors"

// codes names each stream error in the control protocol, so that a
// client of a daemon gets the same typed error (errors.Is) as a caller
// of this package.
var codes = []struct {
	code string
	err  error
}{
	{"ESTREAMNOTSTREAM", ErrNotStream},
	{"ESTREAMVERSION", ErrNewerVersion},
	{"ESTREAMCORRUPT", ErrCorrupt},
	{"ESTREAMTRUNCATED", ErrTruncated},
	{"ESTREAMNOBASE", ErrNoBase},
	{"ESTREAMCHANGED", ErrTargetChanged},
	{"ESTREAMEXISTS", ErrTargetExists},
	{"ESTREAMSNAPEXISTS", ErrSnapshotExists},
	{"ESTREAMBUSY", ErrBusy},
	{"ESTREAMPARTIAL", ErrPartial},
	{"ESTREAMNOPARTIAL", ErrNoPartial},
	{"ESTREAMTOKEN", ErrStaleToken},
}

// Code returns the protocol code of a stream error, or "".
func Code(err error) string {
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return ""
}

// ErrorOfCode returns the stream error a protocol code names, or nil.
func ErrorOfCode(code string) error {
	for _, c := range codes {
		if c.code == code {
			return c.err
		}
	}
	return nil
}
