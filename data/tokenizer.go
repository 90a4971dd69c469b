package data

import (
	"context"
	"runtime"
	"sync"
)

// Tokenisation is the slow stage (GPT-2 BPE runs at a few MB/s per core),
// so documents are cut into chunks that are encoded on every core and put
// back in order. A chunk boundary is only placed where BPE would place a
// piece boundary anyway (see safeCut), so the result is identical to
// encoding each document whole.

const (
	chunkBytes = 64 << 10  // target size of one encoded piece
	jobBytes   = 256 << 10 // target size of one unit of work
)

type encodeJob struct {
	texts []string
	ends  []bool // texts[i] ends its document
	ids   [][]int32
	done  chan struct{}
}

// tokenize streams the documents of srcs through detok, v's normalisation
// and v's encoder, calling emit
// with the ids of consecutive chunks in corpus order; docEnd marks the last
// chunk of a document. It never holds more than a few jobs in memory.
func tokenize(ctx context.Context, v *Vocab, srcs []Source, detok func(string) string,
	emit func(ids []int32, docEnd bool) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	workers := runtime.GOMAXPROCS(0)
	work := make(chan *encodeJob, workers)
	order := make(chan *encodeJob, 2*workers+2)

	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			enc := v.newEncoder()
			for job := range work {
				job.ids = make([][]int32, len(job.texts))
				for i, t := range job.texts {
					ids := enc.append(nil, t)
					for k, id := range ids {
						ids[k] = v.fromGPT2(id)
					}
					job.ids[i] = ids
				}
				close(job.done)
			}
		})
	}

	var prodErr error
	wg.Go(func() {
		defer close(order)
		defer close(work)
		job := &encodeJob{done: make(chan struct{})}
		size := 0
		send := func() bool {
			select {
			case order <- job:
			case <-ctx.Done():
				return false
			}
			work <- job
			job, size = &encodeJob{done: make(chan struct{})}, 0
			return true
		}
		for _, src := range srcs {
			for doc, err := range src.Docs(ctx) {
				if err != nil {
					prodErr = err
					return
				}
				pieces := v.chunks(v.Normalize(detok(doc.Text)))
				for i, p := range pieces {
					job.texts = append(job.texts, p)
					job.ends = append(job.ends, i == len(pieces)-1)
					if size += len(p); size >= jobBytes && !send() {
						return
					}
				}
			}
		}
		if len(job.texts) > 0 {
			send()
		}
	})

	var emitErr error
	for job := range order {
		<-job.done
		for i := range job.texts {
			if emitErr == nil {
				emitErr = emit(job.ids[i], job.ends[i])
			}
		}
		if emitErr != nil {
			cancel()
		}
	}
	wg.Wait()
	if emitErr != nil {
		return emitErr
	}
	return prodErr
}

// chunks cuts a document into pieces that encode independently: at BPE's
// safe points for GPT-2, anywhere for characters and bytes (one id per
// byte).
func (v *Vocab) chunks(text string) []string {
	if v.base == TokGPT2 {
		return splitChunks(text, chunkBytes)
	}
	var out []string
	for len(text) > chunkBytes {
		out = append(out, text[:chunkBytes])
		text = text[chunkBytes:]
	}
	return append(out, text)
}

// splitChunks cuts text into pieces of about size bytes at safe points.
func splitChunks(text string, size int) []string {
	var out []string
	for len(text) > size {
		i := size
		for i < len(text) && !safeCut(text, i) {
			i++
		}
		if i >= len(text) {
			break
		}
		out = append(out, text[:i])
		text = text[i:]
	}
	return append(out, text)
}

// safeCut reports whether GPT-2's pre-tokeniser always starts a new piece
// at byte i: text[i-1] is "\n" between two printable ASCII non-space bytes.
// No pattern can join a non-space byte to a following "\n" (only \s runs
// contain it), the newline alone is then a piece in both the whole text and
// the left chunk (its \s run is one byte, followed by \S or by the end), and
// no pattern starting at or before the newline reaches past it.
func safeCut(text string, i int) bool {
	return i >= 2 && i < len(text) && text[i-1] == '\n' && graphic(text[i-2]) && graphic(text[i])
}

func graphic(b byte) bool { return b > ' ' && b < 0x7f }
