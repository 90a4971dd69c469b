package data

import (
	"encoding/json"
	"fmt"
	"io"
)

// BatchOptions configures a Batches iterator.
type BatchOptions struct {
	// BatchSize is B, the rows per batch.
	BatchSize int
	// Shuffle visits the blocks of each epoch in an order drawn from
	// (Seed, epoch), so every epoch is reshuffled, reproducibly.
	Shuffle bool
	Seed    uint64
	// Loop runs through epochs forever (training); otherwise Next returns
	// io.EOF after one pass (evaluation).
	Loop bool
}

// Batch is B rows of L tokens, row-major. Mask is 1 where a position counts
// in the loss and 0 on padding (which holds EOS).
type Batch struct {
	B, L   int
	Tokens []int64
	Mask   []float32
	// Rows is the number of rows holding data: B, except in the last batch
	// of a non-looping pass, whose remaining rows are all padding.
	Rows int
	// Epoch is the epoch of the first row.
	Epoch int64
}

// Batches cuts a Dataset into batches of packed blocks. Its Position can be
// stored in a checkpoint; Restore continues with exactly the batch that
// would have come next.
type Batches struct {
	lay       *layout
	opt       BatchOptions
	next      int64 // blocks handed out so far, over all epochs
	perm      []int32
	permEpoch int64
	fp        string
}

// Batches returns an iterator over d packed as p.
func (d *Dataset) Batches(p Packing, o BatchOptions) (*Batches, error) {
	if o.BatchSize < 1 {
		return nil, fmt.Errorf("batches: batch size %d < 1", o.BatchSize)
	}
	lay, err := newLayout(d, p, int(d.eos))
	if err != nil {
		return nil, err
	}
	fp := lay.fp
	if o.Shuffle {
		fp = fmt.Sprintf("%s-shuffle%d", fp, o.Seed)
	}
	return &Batches{lay: lay, opt: o, permEpoch: -1, fp: fp}, nil
}

// NumBlocks is the number of blocks in one epoch.
func (b *Batches) NumBlocks() int64 { return b.lay.numBlocks() }

// Epoch is the epoch of the next block.
func (b *Batches) Epoch() int64 { return b.next / b.NumBlocks() }

// Next returns the next batch, or io.EOF at the end of a non-looping pass.
func (b *Batches) Next() (Batch, error) {
	n := b.NumBlocks()
	if !b.opt.Loop && b.next >= n {
		return Batch{}, io.EOF
	}
	B, L := b.opt.BatchSize, b.lay.p.SeqLen
	out := Batch{B: B, L: L, Tokens: make([]int64, B*L), Mask: make([]float32, B*L), Epoch: b.Epoch()}
	for r := range B {
		toks, mask := out.Tokens[r*L:(r+1)*L], out.Mask[r*L:(r+1)*L]
		if !b.opt.Loop && b.next >= n {
			for j := range toks {
				toks[j] = int64(b.lay.eos)
			}
			continue
		}
		b.lay.fill(b.block(b.next), toks, mask)
		b.next++
		out.Rows++
	}
	return out, nil
}

// block maps a global block count to a block of its epoch's order.
func (b *Batches) block(g int64) int64 {
	n := b.NumBlocks()
	epoch, i := g/n, g%n
	if !b.opt.Shuffle {
		return i
	}
	if epoch != b.permEpoch {
		b.perm, b.permEpoch = newRNG(b.opt.Seed, 0xb10c5, uint64(epoch)).permutation(int(n)), epoch
	}
	return int64(b.perm[i])
}

// Position is where a Batches iterator stands; it is small and serialises
// with MarshalBinary for checkpoints.
type Position struct {
	// Block counts the blocks handed out so far, over all epochs.
	Block int64 `json:"block"`
	// Fingerprint identifies the data, packing and shuffle order, so a
	// position is never restored onto different data.
	Fingerprint string `json:"fingerprint"`
}

// Position returns the current position.
func (b *Batches) Position() Position { return Position{Block: b.next, Fingerprint: b.fp} }

// Restore moves the iterator to p, which must come from the same data,
// packing and shuffle seed.
func (b *Batches) Restore(p Position) error {
	if p.Fingerprint != b.fp {
		return fmt.Errorf("restore batches: position is for data/packing %s, this iterator is %s "+
			"(corpus, split, seq_len, pack, bos, vocabulary or seed changed)", p.Fingerprint, b.fp)
	}
	if p.Block < 0 || (!b.opt.Loop && p.Block > b.NumBlocks()) {
		return fmt.Errorf("restore batches: block %d is outside this pass of %d blocks", p.Block, b.NumBlocks())
	}
	b.next = p.Block
	return nil
}

// MarshalBinary encodes p as a short JSON document.
func (p Position) MarshalBinary() ([]byte, error) { return json.Marshal(p) }

// UnmarshalBinary decodes what MarshalBinary wrote.
func (p *Position) UnmarshalBinary(b []byte) error {
	if err := json.Unmarshal(b, p); err != nil {
		return fmt.Errorf("batch position: %w", err)
	}
	return nil
}
