/* A C API over libtorch's distributed layer (c10d): a TCPStore-backed
 * process group (Gloo on CPU; NCCL where libtorch was built with it) and
 * the few collectives data-parallel training needs. tools/torchprep
 * compiles c10d.cpp into .torch/lib/libdifflm_c10d.so; package dist calls
 * it. Every call that can fail returns NULL or an error message the caller
 * frees with free(); nothing aborts the process. One thing cannot be
 * returned: while a group exists, a connection to its store reset under
 * libtorch's own store thread ends the process with exit status 1 and a
 * message naming the rank and the store (c10d.cpp, "Losing the store").
 * Tensors are gotch's handles (torch::Tensor*). */
#ifndef DIFFLM_C10D_H
#define DIFFLM_C10D_H

#ifdef __cplusplus
extern "C" {
#endif

typedef void *c10d_group;

/* c10d_new_group joins (rank 0: hosts) the TCPStore at host:port and
 * creates a process group of the backend ("gloo" or "nccl") over it. It
 * waits at most timeout_ms for the others; the same timeout bounds every
 * later collective. */
char *c10d_new_group(const char *backend, const char *host, int port, int rank, int world,
                     int timeout_ms, c10d_group *out);

/* c10d_allreduce sums the n tensors over the group in place (average != 0:
 * and divides by the world size), in flat buckets of at most bucket_bytes
 * (one tensor larger than that is its own bucket). */
char *c10d_allreduce(c10d_group g, void **tensors, int n, int average, long long bucket_bytes);

/* c10d_broadcast copies root's n tensors into every rank's, in place. */
char *c10d_broadcast(c10d_group g, void **tensors, int n, int root);

/* c10d_barrier returns once every rank has called it. */
char *c10d_barrier(c10d_group g);

/* c10d_silent_ranks writes to out (room for the world size) the other
 * ranks whose heartbeat stands still over 1.5 s, and returns how many; -1
 * when the store itself cannot be reached (rank 0, its host, is gone).
 * For naming the dead after a collective failed. */
int c10d_silent_ranks(c10d_group g, int *out);

/* c10d_free_group leaves the group and frees it. */
void c10d_free_group(c10d_group g);

/* c10d_has_nccl is 1 when this library was built with NCCL. */
int c10d_has_nccl(void);

#ifdef __cplusplus
}
#endif

#endif
