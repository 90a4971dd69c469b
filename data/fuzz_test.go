package data

import (
	"context"
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
)

// validCache is a small well-formed token cache: two documents of 3 and 2
// uint16 tokens.
func validCache() []byte {
	b := make([]byte, headerBytes)
	copy(b, cacheMagic)
	le := binary.LittleEndian
	le.PutUint32(b[8:], cacheVersion)
	le.PutUint32(b[12:], 2)
	le.PutUint64(b[16:], 5)
	le.PutUint64(b[24:], 2)
	for _, id := range []uint16{1, 2, 3, 4, 5} {
		b = le.AppendUint16(b, id)
	}
	b = le.AppendUint64(b, 3)
	b = le.AppendUint64(b, 5)
	le.PutUint32(b[32:], crc32.Checksum(b[headerBytes:], castagnoli))
	return b
}

// FuzzTokenCache: any file is a cache or a corrupt-cache error, never a
// panic or an out-of-range read. The fuzzer's bytes are tried as they are
// and with their checksum fixed, so that it explores past the CRC.
func FuzzTokenCache(f *testing.F) {
	f.Add(validCache())
	f.Add(validCache()[:headerBytes])
	f.Add([]byte("DLMTOKS\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, fix := range []bool{false, true} {
			if fix && len(b) >= headerBytes {
				b = append([]byte(nil), b...)
				binary.LittleEndian.PutUint32(b[32:], crc32.Checksum(b[headerBytes:], castagnoli))
			}
			path := filepath.Join(dir, "tokens.bin")
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			tf, err := openTokens(path)
			if err != nil {
				continue
			}
			for d := range tf.NumDocs() {
				s, e := tf.Span(d)
				for i := s; i < e; i++ {
					tf.At(i)
				}
			}
			tf.Close()
		}
	})
}

// FuzzJSONL: any file read as JSON lines yields documents or an error
// naming its line, never a panic.
func FuzzJSONL(f *testing.F) {
	for _, s := range []string{"{\"text\": \"a\"}\n{\"text\": \"b\"}\n", "{\"text\": 3}\n", "{", "\n\n", "{\"other\": \"x\"}\n", "{\"text\": \"\\ud800\"}\n"} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(dir, "x.jsonl")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		src := &jsonlSource{path: path, field: "text"}
		for _, err := range src.Docs(context.Background()) {
			if err != nil {
				break
			}
		}
	})
}

// FuzzParquet: any file read as parquet yields documents or an error,
// never a panic (one seed is a real file from the tests' writer).
func FuzzParquet(f *testing.F) {
	f.Add([]byte("PAR1"))
	f.Add([]byte("PAR1\x00\x00\x00\x00PAR1"))
	a, b := "first doc", "second"
	f.Add(parquetBytes(f, []*string{&a, nil, &b}))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(dir, "x.parquet")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		src := &parquetSource{name: path, column: "text", open: openLocalParquet(path)}
		n := 0
		for _, err := range src.Docs(context.Background()) {
			if err != nil || n > 1000 {
				break
			}
			n++
		}
	})
}
