package data

import (
	"encoding/binary"
	"unsafe"
)

// tokenFile is a tokenised corpus: a flat array of ids cut into documents,
// usually memory-mapped from a cache file, so that a corpus far larger
// than RAM costs only page cache.
type tokenFile struct {
	path string
	u16  []uint16
	u32  []uint32
	ends []int64 // ends[d] is one past the last token of document d
	sum  uint32  // checksum of the content (identifies it in fingerprints)
	free func() error
}

// Len is the number of tokens.
func (t *tokenFile) Len() int64 {
	if t.u16 != nil {
		return int64(len(t.u16))
	}
	return int64(len(t.u32))
}

// NumDocs is the number of documents.
func (t *tokenFile) NumDocs() int { return len(t.ends) }

// At is the id at position i.
func (t *tokenFile) At(i int64) int32 {
	if t.u16 != nil {
		return int32(t.u16[i])
	}
	return int32(t.u32[i])
}

// Span is the [start, end) token range of document d.
func (t *tokenFile) Span(d int) (start, end int64) {
	if d > 0 {
		start = t.ends[d-1]
	}
	return start, t.ends[d]
}

// Close unmaps the file; the tokenFile must not be used afterwards.
func (t *tokenFile) Close() error {
	if t.free == nil {
		return nil
	}
	f := t.free
	t.free, t.u16, t.u32 = nil, nil, nil
	return f()
}

var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// asUint16 views little-endian bytes as []uint16 without copying where the
// host allows (the cache's payload starts 64-byte aligned in a mapping).
func asUint16(b []byte) []uint16 {
	n := len(b) / 2
	if littleEndian && uintptr(unsafe.Pointer(unsafe.SliceData(b)))%2 == 0 {
		return unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(b))), n)
	}
	out := make([]uint16, n)
	for i := range out {
		out[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return out
}

func asUint32(b []byte) []uint32 {
	n := len(b) / 4
	if littleEndian && uintptr(unsafe.Pointer(unsafe.SliceData(b)))%4 == 0 {
		return unsafe.Slice((*uint32)(unsafe.Pointer(unsafe.SliceData(b))), n)
	}
	out := make([]uint32, n)
	for i := range out {
		out[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	return out
}
