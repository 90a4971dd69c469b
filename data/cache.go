package data

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
)

// A token cache file holds one tokenised corpus so that later runs map it
// instead of tokenising again. Layout (little-endian):
//
//	0   magic "DLMTOKS\n"
//	8   uint32 version (1)
//	12  uint32 width: bytes per token, 2 (uint16, when V <= 65535) or 4
//	16  uint64 number of tokens
//	24  uint64 number of documents
//	32  uint32 CRC-32C of everything after the 64-byte header
//	64  tokens, then one uint64 end offset per document
//
// A file whose header, length or checksum is wrong is reported as
// errCorruptCache, and Load rebuilds it with a warning naming the file.

const (
	cacheMagic   = "DLMTOKS\n"
	cacheVersion = 1
	headerBytes  = 64
)

// errCorruptCache marks a token cache file that failed its checks.
var errCorruptCache = errors.New("corrupt token cache")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// cacheWriter streams a corpus into a temporary file that commit renames
// into place, so a crash never leaves a half-written cache under its name.
type cacheWriter struct {
	path  string
	tmp   *os.File
	w     *bufio.Writer
	crc   hash.Hash32
	width int
	ntok  int64
	ends  []int64
	buf   []byte
}

func createCache(path string, width int) (*cacheWriter, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("token cache: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return nil, fmt.Errorf("token cache: %w", err)
	}
	c := &cacheWriter{path: path, tmp: tmp, crc: crc32.New(castagnoli), width: width}
	if _, err := tmp.Write(make([]byte, headerBytes)); err != nil {
		c.abort()
		return nil, fmt.Errorf("token cache %s: %w", tmp.Name(), err)
	}
	c.w = bufio.NewWriterSize(io.MultiWriter(tmp, c.crc), 1<<20)
	return c, nil
}

// write appends ids to the current document.
func (c *cacheWriter) write(ids []int32) error {
	c.buf = c.buf[:0]
	for _, id := range ids {
		if id < 0 || (c.width == 2 && id > 0xffff) {
			return fmt.Errorf("token cache %s: id %d does not fit %d bytes", c.path, id, c.width)
		}
		if c.width == 2 {
			c.buf = binary.LittleEndian.AppendUint16(c.buf, uint16(id))
		} else {
			c.buf = binary.LittleEndian.AppendUint32(c.buf, uint32(id))
		}
	}
	c.ntok += int64(len(ids))
	_, err := c.w.Write(c.buf)
	return err
}

// endDoc closes the current document.
func (c *cacheWriter) endDoc() { c.ends = append(c.ends, c.ntok) }

func (c *cacheWriter) commit() error {
	err := func() error {
		for _, e := range c.ends {
			var b [8]byte
			binary.LittleEndian.PutUint64(b[:], uint64(e))
			if _, err := c.w.Write(b[:]); err != nil {
				return err
			}
		}
		if err := c.w.Flush(); err != nil {
			return err
		}
		h := make([]byte, headerBytes)
		copy(h, cacheMagic)
		binary.LittleEndian.PutUint32(h[8:], cacheVersion)
		binary.LittleEndian.PutUint32(h[12:], uint32(c.width))
		binary.LittleEndian.PutUint64(h[16:], uint64(c.ntok))
		binary.LittleEndian.PutUint64(h[24:], uint64(len(c.ends)))
		binary.LittleEndian.PutUint32(h[32:], c.crc.Sum32())
		if _, err := c.tmp.WriteAt(h, 0); err != nil {
			return err
		}
		if err := c.tmp.Close(); err != nil {
			return err
		}
		return os.Rename(c.tmp.Name(), c.path)
	}()
	if err != nil {
		c.abort()
		return fmt.Errorf("token cache %s: %w", c.path, err)
	}
	return nil
}

func (c *cacheWriter) abort() {
	c.tmp.Close()
	os.Remove(c.tmp.Name())
}

// openTokens maps a token cache file after checking its header, length and
// checksum; a failed check wraps errCorruptCache and names the file.
func openTokens(path string) (*tokenFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("token cache: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("token cache: %w", err)
	}
	corrupt := func(format string, args ...any) (*tokenFile, error) {
		return nil, fmt.Errorf("token cache %s: %w: %s", path, errCorruptCache, fmt.Sprintf(format, args...))
	}
	if st.Size() < headerBytes {
		return corrupt("%d bytes, shorter than the header", st.Size())
	}
	b, free, err := mapFile(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("token cache %s: map: %w", path, err)
	}
	t, reason := parseCache(b)
	if reason != "" {
		free()
		return corrupt("%s", reason)
	}
	t.path, t.free = path, free
	return t, nil
}

func parseCache(b []byte) (*tokenFile, string) {
	le := binary.LittleEndian
	if string(b[:8]) != cacheMagic {
		return nil, fmt.Sprintf("bad magic %q", b[:8])
	}
	if v := le.Uint32(b[8:]); v != cacheVersion {
		return nil, fmt.Sprintf("version %d, want %d", v, cacheVersion)
	}
	width, ntok, ndocs := int64(le.Uint32(b[12:])), le.Uint64(b[16:]), le.Uint64(b[24:])
	if width != 2 && width != 4 {
		return nil, fmt.Sprintf("token width %d is not 2 or 4", width)
	}
	payload := b[headerBytes:]
	if ntok > uint64(len(payload))/uint64(width) || ndocs > uint64(len(payload))/8 ||
		uint64(len(payload)) != ntok*uint64(width)+ndocs*8 {
		return nil, fmt.Sprintf("%d bytes, but the header announces %d tokens of %d bytes and %d documents (truncated?)",
			len(b), ntok, width, ndocs)
	}
	if sum := crc32.Checksum(payload, castagnoli); sum != le.Uint32(b[32:]) {
		return nil, fmt.Sprintf("checksum %08x, header says %08x", sum, le.Uint32(b[32:]))
	}
	toks := payload[:ntok*uint64(width)]
	t := &tokenFile{sum: le.Uint32(b[32:]), ends: make([]int64, ndocs)}
	prev := int64(0)
	for d := range t.ends {
		e := int64(le.Uint64(payload[int(ntok)*int(width)+8*d:]))
		if e < prev || e > int64(ntok) {
			return nil, fmt.Sprintf("document %d ends at %d, outside %d..%d", d, e, prev, ntok)
		}
		t.ends[d], prev = e, e
	}
	if prev != int64(ntok) {
		return nil, fmt.Sprintf("documents cover %d of %d tokens", prev, ntok)
	}
	if width == 2 {
		t.u16 = asUint16(toks)
	} else {
		t.u32 = asUint32(toks)
	}
	return t, ""
}

// cachedTokens opens the cache file named by key in dir, building it with
// build when it is missing, and rebuilding it (with a warning naming the
// file) when it is corrupt.
func cachedTokens(dir, key string, width int, build func(w *cacheWriter) error) (*tokenFile, bool, error) {
	path := filepath.Join(dir, "tokens-"+key+".bin")
	t, err := openTokens(path)
	switch {
	case err == nil:
		return t, true, nil
	case errors.Is(err, errCorruptCache):
		slog.Warn("token cache is corrupt; rebuilding it", "file", path, "err", err)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, false, err
	}
	w, err := createCache(path, width)
	if err != nil {
		return nil, false, err
	}
	if err := build(w); err != nil {
		w.abort()
		return nil, false, err
	}
	if err := w.commit(); err != nil {
		return nil, false, err
	}
	t, err = openTokens(path)
	return t, false, err
}
