package torchx

import (
	"log/slog"
	"sync"
)

// Workers is n goroutines, each locked to an OS thread of its own for its
// whole life with intra-op parallelism 1 (LockWorker), that run the
// functions Run hands them. The threads last as long as the Workers
// because a thread's first torch op is costly: libtorch sets up its
// per-thread state there (at::init_num_threads, which rebuilds the
// process's caffe2 pthreadpool), so a fresh goroutine and thread per task
// measured 40% slower than no lanes at all
// (models/lanes.go), these well ahead.
type Workers struct {
	tasks []chan func()
	done  chan struct{}
	once  sync.Once
}

// NewWorkers starts n workers; Close stops them.
func NewWorkers(n int) *Workers {
	w := &Workers{tasks: make([]chan func(), n), done: make(chan struct{})}
	ready := make(chan bool)
	for i := range w.tasks {
		tasks := make(chan func())
		w.tasks[i] = tasks
		go func() {
			ready <- LockWorker() // never unlocked: the thread ends with the goroutine
			for {
				select {
				case fn := <-tasks:
					fn()
				case <-w.done:
					return
				}
			}
		}()
	}
	serial := true
	for range n {
		serial = <-ready && serial
	}
	if !serial {
		slog.Warn("torchx: libtorch has no OpenMP here, so each worker keeps the process's intra-op thread count and the workers ask for workers × threads cores", "workers", n, "threads", Threads())
	}
	return w
}

// Len is the number of workers.
func (w *Workers) Len() int { return len(w.tasks) }

// Run runs fn(i) on worker i for i < n ≤ Len(), all at once, and returns
// when every one has. A panic in fn stops the process, as in any
// goroutine.
func (w *Workers) Run(n int, fn func(i int)) {
	var wg sync.WaitGroup
	wg.Add(n)
	for i := range n {
		w.tasks[i] <- func() {
			defer wg.Done()
			fn(i)
		}
	}
	wg.Wait()
}

// Close stops the workers (after the task each is running, if any); their
// threads exit. Safe to call twice.
func (w *Workers) Close() { w.once.Do(func() { close(w.done) }) }
