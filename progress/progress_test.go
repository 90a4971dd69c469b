package progress

import (
	"bytes"
	"os"
	"testing"
)

// Off a terminal a meter writes a plain line every `every` units and at
// the last one, and nothing at all without a writer.
func TestPlainLines(t *testing.T) {
	var buf bytes.Buffer
	m := New(&buf, "eval valid", 5, 2, Plain(&buf, "eval valid", 5))
	for i := 1; i <= 5; i++ {
		m.Add(1, "x")
	}
	m.Finish()
	want := "eval valid 2/5 x\neval valid 4/5 x\neval valid 5/5 x\n"
	if buf.String() != want {
		t.Errorf("wrote %q, want %q", buf.String(), want)
	}
	silent := New(nil, "none", 3, 1, Plain(&buf, "none", 3))
	silent.Add(3, "y")
	if buf.String() != want {
		t.Errorf("a meter without a writer wrote %q", buf.String()[len(want):])
	}
}

// A buffer, a regular file and CI=true are not terminals.
func TestTerminal(t *testing.T) {
	if Terminal(&bytes.Buffer{}) {
		t.Error("a buffer is a terminal")
	}
	f, err := os.CreateTemp(t.TempDir(), "log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if Terminal(f) {
		t.Error("a regular file is a terminal")
	}
	t.Setenv("CI", "true")
	if tty, err := os.Open("/dev/tty"); err == nil {
		defer tty.Close()
		if Terminal(tty) {
			t.Error("a terminal under CI=true draws a bar")
		}
	}
}
