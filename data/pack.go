package data

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"sort"
)

// Packing says how documents become fixed-length blocks.
type Packing struct {
	// SeqLen is L, the block length.
	SeqLen int
	// Mode is "wrap": every document followed by EOS (and preceded by EOS
	// as BOS when BOS is set), all concatenated and cut every L tokens, the
	// last block padded; or "pad": each document (with its EOS/BOS) starts
	// a new block, continues into further blocks when longer than L, and
	// its last block is padded.
	Mode string
	BOS  bool
}

// layout maps block numbers to tokens for one Dataset and Packing, without
// materialising the blocks: wrap keeps each document's offset in the
// concatenated stream, pad keeps one (document, offset) pair per block.
type layout struct {
	ds     *Dataset
	p      Packing
	eos    int32
	starts []int64    // wrap: stream offset of each document, plus the total
	blocks []padBlock // pad
	fp     string
}

type padBlock struct {
	doc int32
	off int64
}

func newLayout(ds *Dataset, p Packing, eos int) (*layout, error) {
	if p.SeqLen < 2 {
		return nil, fmt.Errorf("packing: seq_len %d is too small", p.SeqLen)
	}
	if p.Mode != "wrap" && p.Mode != "pad" {
		return nil, fmt.Errorf("packing: mode %q is not one of wrap|pad", p.Mode)
	}
	n := ds.NumDocs()
	if n == 0 {
		return nil, fmt.Errorf("packing: dataset %s has no documents", ds.Name)
	}
	l := &layout{ds: ds, p: p, eos: int32(eos)}
	L := int64(p.SeqLen)
	if p.Mode == "wrap" {
		l.starts = make([]int64, n+1)
		for i := range n {
			l.starts[i+1] = l.starts[i] + l.unitLen(i)
		}
	} else {
		for i := range n {
			for off := int64(0); off < l.unitLen(i); off += L {
				l.blocks = append(l.blocks, padBlock{int32(i), off})
			}
		}
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s|%d|%t|%d|%d|%08x|%d|", p.Mode, p.SeqLen, p.BOS, eos, ds.toks.Len(), ds.toks.sum, n)
	_ = binary.Write(h, binary.LittleEndian, ds.docs)
	l.fp = hex.EncodeToString(h.Sum(nil))[:16]
	return l, nil
}

// unitLen is the length of document i with its EOS (and BOS).
func (l *layout) unitLen(i int) int64 {
	s, e := l.ds.span(i)
	if l.p.BOS {
		return e - s + 2
	}
	return e - s + 1
}

func (l *layout) numBlocks() int64 {
	if l.starts != nil {
		L := int64(l.p.SeqLen)
		return (l.starts[len(l.starts)-1] + L - 1) / L
	}
	return int64(len(l.blocks))
}

// fill writes block b into toks and mask (both of length L); positions
// past the data hold EOS with mask 0.
func (l *layout) fill(b int64, toks []int64, mask []float32) {
	L := int64(l.p.SeqLen)
	var d int
	var k, limit int64 // offset in unit d; how many tokens this block takes
	if l.starts != nil {
		pos := b * L
		d = sort.Search(len(l.starts)-1, func(i int) bool { return l.starts[i+1] > pos })
		k = pos - l.starts[d]
		limit = min(L, l.starts[len(l.starts)-1]-pos)
	} else {
		d, k = int(l.blocks[b].doc), l.blocks[b].off
		limit = min(L, l.unitLen(d)-k)
	}
	s, e := l.ds.span(d)
	for j := range L {
		if j >= limit {
			toks[j], mask[j] = int64(l.eos), 0
			continue
		}
		for k >= e-s+1+b2i(l.p.BOS) { // next document (wrap only)
			d, k = d+1, 0
			s, e = l.ds.span(d)
		}
		toks[j], mask[j] = l.unitToken(s, e, k), 1
		k++
	}
}

func (l *layout) unitToken(s, e, k int64) int64 {
	if l.p.BOS {
		if k == 0 {
			return int64(l.eos)
		}
		k--
	}
	if s+k == e {
		return int64(l.eos)
	}
	return int64(l.ds.toks.At(s + k))
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
