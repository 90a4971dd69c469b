// Implementation of c10d.h on libtorch's c10d (see there for the API).
#include "c10d.h"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <exception>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <torch/torch.h>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace {

// kBeat is the heartbeat period: every rank bumps its counter in the
// store this often, so that after a failed collective a survivor can tell
// which ranks are gone (their counters stand still).
constexpr auto kBeat = std::chrono::milliseconds(250);

std::string beatKey(int rank) { return "difflm/heartbeat/" + std::to_string(rank); }

struct Group {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroup> pg;
  std::chrono::milliseconds timeout;
  int rank = 0;
  int world = 1;
  std::string host;
  int port = 0;
  // The heartbeat: its own store client (a TCPStore connection is not
  // shared between threads) and thread.
  c10::intrusive_ptr<c10d::Store> beatStore;
  std::thread beat;
  std::atomic<bool> stop{false};

  ~Group() {
    stop = true;
    if (beat.joinable()) beat.join();
  }
};

// client is a new connection to the group's store.
c10::intrusive_ptr<c10d::Store> client(Group *g, std::chrono::milliseconds timeout) {
  c10d::TCPStoreOptions o;
  o.port = static_cast<std::uint16_t>(g->port);
  o.isServer = false;
  o.waitWorkers = false;
  o.timeout = timeout;
  return c10::make_intrusive<c10d::TCPStore>(g->host, o);
}

char *error(const std::string &msg) { return strdup(msg.c_str()); }

// Losing the store. libtorch 1.13's TCPStore client runs a thread for
// watchKey callbacks that reads its own connection to the store; when that
// connection is reset (rank 0 died with data in flight, or its host or
// the network went away) the thread throws std::system_error out of
// itself, and the C++ runtime aborts the process with a bare "Connection
// reset by peer". Nothing outside libtorch can catch it, so a terminate
// handler turns that one case into what the rank would have said after
// its next collective failed: who it is, which store it lost, that rank 0
// has stopped; and exit status 1, as for any other error. Every other
// uncaught exception goes to the handler that was there before.
std::mutex lostMu;
std::string lostStoreMsg;  // set by c10d_new_group; read only by onTerminate
std::terminate_handler previousHandler = nullptr;

[[noreturn]] void onTerminate() {
  if (auto ex = std::current_exception()) {
    try {
      std::rethrow_exception(ex);
    } catch (const std::system_error &e) {
      std::string msg;
      {
        std::lock_guard<std::mutex> l(lostMu);
        msg = lostStoreMsg;
      }
      if (!msg.empty() && e.code().category() == std::system_category()) {
        std::fprintf(stderr, "%s (%s): rank 0, which hosts the store, is unreachable: it has stopped\n",
                     msg.c_str(), e.what());
        std::fflush(stderr);
        std::_Exit(1);
      }
    } catch (...) {
    }
  }
  if (previousHandler != nullptr) previousHandler();
  std::abort();
}

void watchForLostStore(const std::string &msg) {
  static std::once_flag once;
  {
    std::lock_guard<std::mutex> l(lostMu);
    lostStoreMsg = msg;
  }
  std::call_once(once, [] { previousHandler = std::set_terminate(onTerminate); });
}

// guarded runs f and turns any C++ exception into an error message.
template <typename F> char *guarded(const char *what, F f) {
  try {
    f();
    return nullptr;
  } catch (const c10::Error &e) {
    return error(std::string(what) + ": " + e.what_without_backtrace());
  } catch (const std::exception &e) {
    return error(std::string(what) + ": " + e.what());
  } catch (...) {
    return error(std::string(what) + ": unknown C++ exception");
  }
}

std::vector<at::Tensor> tensorsOf(void **ts, int n) {
  std::vector<at::Tensor> out;
  out.reserve(n);
  for (int i = 0; i < n; i++) out.push_back(*static_cast<at::Tensor *>(ts[i]));
  return out;
}

void wait(Group *g, c10::intrusive_ptr<c10d::Work> work) { work->wait(g->timeout); }

bool loopback(const std::string &host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

}  // namespace

extern "C" {

char *c10d_new_group(const char *backend, const char *host, int port, int rank, int world,
                     int timeout_ms, c10d_group *out) {
  *out = nullptr;
  std::string be(backend), h(host);
  if (world < 1 || rank < 0 || rank >= world)
    return error("c10d: rank " + std::to_string(rank) + " outside a world of " + std::to_string(world));
  if (port <= 0 || port > 65535) return error("c10d: port " + std::to_string(port) + " out of range");
  auto *g = new Group();
  g->timeout = std::chrono::milliseconds(timeout_ms);
  g->rank = rank;
  g->world = world;
  g->host = h;
  g->port = port;
  char *err = guarded("c10d: create the TCPStore", [&] {
    c10d::TCPStoreOptions o;
    o.port = static_cast<std::uint16_t>(port);
    o.isServer = rank == 0;
    o.numWorkers = world;
    o.waitWorkers = true;
    o.timeout = g->timeout;
    g->store = c10::make_intrusive<c10d::TCPStore>(h, o);
  });
  if (err == nullptr) {
    err = guarded(("c10d: create the " + be + " process group").c_str(), [&] {
      if (be == "gloo") {
        auto o = c10d::ProcessGroupGloo::Options::create(g->timeout);
        const char *ifname = std::getenv("GLOO_SOCKET_IFNAME");
        if (ifname != nullptr && *ifname != '\0')
          o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
        else if (loopback(h))
          o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
        else
          o->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
        o->threads = 2;
        g->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(g->store, rank, world, o);
      } else if (be == "nccl") {
#ifdef USE_C10D_NCCL
        auto o = c10d::ProcessGroupNCCL::Options::create();
        o->timeout = g->timeout;
        g->pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(g->store, rank, world, o);
#else
        throw std::runtime_error(
            "this libtorch has no NCCL (a CPU build); NCCL needs a CUDA libtorch, then run make setup again");
#endif
      } else {
        throw std::runtime_error("unknown backend \"" + be + "\": want gloo or nccl");
      }
    });
  }
  if (err == nullptr) {
    err = guarded("c10d: start the heartbeat", [&] {
      g->beatStore = client(g, g->timeout);
      g->beatStore->add(beatKey(rank), 1);
      g->beat = std::thread([g] {
        try {
          while (!g->stop) {
            std::this_thread::sleep_for(kBeat);
            g->beatStore->add(beatKey(g->rank), 1);
          }
        } catch (...) {
          // The store is gone (rank 0 ended): nothing left to signal to.
        }
      });
    });
  }
  if (err != nullptr) {
    delete g;
    return err;
  }
  watchForLostStore("dist: rank " + std::to_string(rank) + " of " + std::to_string(world) +
                    ": lost the connection to the TCPStore at " + h + ":" + std::to_string(port));
  *out = g;
  return nullptr;
}

int c10d_silent_ranks(c10d_group gp, int *out) {
  auto *g = static_cast<Group *>(gp);
  try {
    auto probe = client(g, std::chrono::milliseconds(2000));
    std::vector<int64_t> before(g->world);
    for (int r = 0; r < g->world; r++) before[r] = probe->add(beatKey(r), 0);
    std::this_thread::sleep_for(kBeat * 6);
    int n = 0;
    for (int r = 0; r < g->world; r++)
      if (r != g->rank && probe->add(beatKey(r), 0) == before[r]) out[n++] = r;
    return n;
  } catch (...) {
    return -1;  // the store itself is unreachable: rank 0 is gone
  }
}

char *c10d_allreduce(c10d_group gp, void **tensors, int n, int average, long long bucket_bytes) {
  auto *g = static_cast<Group *>(gp);
  return guarded("c10d: all-reduce", [&] {
    std::vector<at::Tensor> ts = tensorsOf(tensors, n);
    size_t i = 0;
    while (i < ts.size()) {
      // A bucket: consecutive tensors of one dtype and device, up to bucket_bytes.
      size_t j = i + 1;
      long long bytes = ts[i].numel() * ts[i].element_size();
      while (j < ts.size() && ts[j].scalar_type() == ts[i].scalar_type() &&
             ts[j].device() == ts[i].device() &&
             bytes + ts[j].numel() * ts[j].element_size() <= bucket_bytes) {
        bytes += ts[j].numel() * ts[j].element_size();
        j++;
      }
      std::vector<at::Tensor> views;
      for (size_t k = i; k < j; k++) views.push_back(ts[k].reshape({-1}));
      std::vector<at::Tensor> flat{j - i == 1 && ts[i].is_contiguous() ? ts[i] : at::cat(views)};
      c10d::AllreduceOptions o;
      o.reduceOp = c10d::ReduceOp::SUM;
      wait(g, g->pg->allreduce(flat, o));
      if (average) flat[0].div_(g->world);
      if (!(j - i == 1 && ts[i].is_contiguous())) {
        int64_t off = 0;
        for (size_t k = i; k < j; k++) {
          int64_t m = ts[k].numel();
          ts[k].copy_(flat[0].narrow(0, off, m).view(ts[k].sizes()));
          off += m;
        }
      }
      i = j;
    }
  });
}

char *c10d_broadcast(c10d_group gp, void **tensors, int n, int root) {
  auto *g = static_cast<Group *>(gp);
  return guarded("c10d: broadcast", [&] {
    std::vector<at::Tensor> ts = tensorsOf(tensors, n);
    for (auto &t : ts) {
      std::vector<at::Tensor> one{t};
      c10d::BroadcastOptions o;
      o.rootRank = root;
      wait(g, g->pg->broadcast(one, o));
    }
  });
}

char *c10d_barrier(c10d_group gp) {
  auto *g = static_cast<Group *>(gp);
  return guarded("c10d: barrier", [&] { wait(g, g->pg->barrier()); });
}

void c10d_free_group(c10d_group gp) {
  delete static_cast<Group *>(gp);
  watchForLostStore("");  // no group, no store to lose: abort as before
}

int c10d_has_nccl(void) {
#ifdef USE_C10D_NCCL
  return 1;
#else
  return 0;
#endif
}

}  // extern "C"
