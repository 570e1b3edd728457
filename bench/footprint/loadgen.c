// The traffic of bench/footprint/run.mjs: many long-lived TCP connections that keep talking, short ones
// that come and go, and marker connections on demand. One binary, two roles, each in its own network
// namespace (the client pods' and the server pods'), non-blocking sockets on epoll.
//
// Every connection costs a file descriptor on each side, and a process may hold only RLIMIT_NOFILE of
// them — a hard limit that only CAP_SYS_RESOURCE raises (a container without it stays at e.g. 20,000).
// So each role forks as many worker processes as the connections need, each within the limit; the
// parent adds up their counters (shared memory) and does the rest.
//
//   loadgen server flows=<N> port=<first> ports=<n> ips=<a,b,…>
//     Workers listen on every ip × port with SO_REUSEPORT (the kernel spreads connections over them by
//     their addresses and ports) and answer every read of n bytes with 2n bytes (so the two directions
//     of a flow differ). Prints "ready <workers>" once all listen; on SIGTERM/SIGINT one JSON line of
//     totals.
//
//   loadgen client flows=<N> period=<ms> churn=<per s> port=<first> ports=<n> clients=<a,…> servers=<a,…>
//                  churn-from=<ip> marker-from=<ip> [inflight=<n>]
//     Workers open N connections from the client addresses to every server address × port (spread so that
//     no 4-tuple space runs out); the parent prints "established <n> <N>" every second and
//     "ready <N> <ms> <workers>" once all are up. Then each connection sends a 100–300-byte message every
//     `period` ms, the sends of all connections spread evenly over the period, and reads the answer; a
//     connection still waiting for its previous answer skips its turn (counted). The parent makes `churn`
//     short connections per second (from churn-from: connect, send 200 bytes, read the answer, close),
//     and for a line "mark <bytes>" on stdin a connection from marker-from to the first server that sends
//     <bytes>, printing "marked <seq> <unix ms of the send, fractional>" then "answered <seq> <unix ms>".
//     A connection that breaks is opened again. On SIGTERM/SIGINT one JSON line of totals.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define MAX_ADDRS 4096
#define MAX_WORKERS 512
#define ANSWER_FACTOR 2
#define SHORT_SLOTS 4096
#define CHURN_BYTES 200
// Descriptors a worker keeps free for listeners, epoll and the rest.
#define FD_SLACK 1024

static volatile sig_atomic_t stop;
static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

static double now_ms(clockid_t clock) {
  struct timespec t;
  clock_gettime(clock, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static const char* arg(int argc, char** argv, const char* key, const char* fallback) {
  size_t n = strlen(key);
  for (int i = 2; i < argc; i++)
    if (strncmp(argv[i], key, n) == 0 && argv[i][n] == '=') return argv[i] + n + 1;
  if (!fallback) {
    fprintf(stderr, "loadgen: missing %s=\n", key);
    exit(2);
  }
  return fallback;
}

static int parse_addrs(const char* csv, struct in_addr* out) {
  int n = 0;
  char* copy = strdup(csv);
  for (char* tok = strtok(copy, ","); tok; tok = strtok(NULL, ",")) {
    if (n == MAX_ADDRS || inet_pton(AF_INET, tok, &out[n]) != 1) {
      fprintf(stderr, "loadgen: bad address list %s\n", csv);
      exit(2);
    }
    n++;
  }
  free(copy);
  if (n == 0) {
    fprintf(stderr, "loadgen: empty address list\n");
    exit(2);
  }
  return n;
}

/** Raises the soft descriptor limit to the hard one (and the hard one too, where allowed); returns it. */
static long fd_capacity(long want) {
  struct rlimit r;
  getrlimit(RLIMIT_NOFILE, &r);
  struct rlimit up = {.rlim_cur = want, .rlim_max = want};
  if (r.rlim_max < (rlim_t)want && setrlimit(RLIMIT_NOFILE, &up) == 0) return want;
  getrlimit(RLIMIT_NOFILE, &r);
  r.rlim_cur = r.rlim_max;
  setrlimit(RLIMIT_NOFILE, &r);
  getrlimit(RLIMIT_NOFILE, &r);
  return (long)r.rlim_cur;
}

// Counters each worker writes and the parent reads (relaxed atomics: totals, not synchronisation).
struct wstats {
  uint64_t established, connect_errors, reconnects, messages, skipped, bytes_out, bytes_in, accepted, closed,
      accept_errors;
  int listening;
};
struct shared {
  volatile double talk_start;  // CLOCK_MONOTONIC ms at which the talk starts; 0 until every connection is up
  struct wstats w[MAX_WORKERS];
};
static struct shared* sh;
#define ADD(field, n) __atomic_add_fetch(&(field), (n), __ATOMIC_RELAXED)
#define GET(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)

static uint64_t total(size_t offset, int workers) {
  uint64_t t = 0;
  for (int w = 0; w < workers; w++) t += GET(*(uint64_t*)((char*)&sh->w[w] + offset));
  return t;
}
#define TOTAL(field, workers) total(offsetof(struct wstats, field), workers)

static pid_t pids[MAX_WORKERS];

/** Forks `n` workers running fn(w, n); they die with the parent. */
static void fork_workers(int n, void (*fn)(int, int)) {
  pid_t parent = getpid();
  for (int w = 0; w < n; w++) {
    pid_t pid = fork();
    if (pid < 0) {
      perror("loadgen: fork");
      exit(1);
    }
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(1);
      fn(w, n);
      _exit(0);
    }
    pids[w] = pid;
  }
}

/** A worker that ended while the parent still runs: the run is broken. */
static int worker_died(int n) {
  for (int w = 0; w < n; w++) {
    int status;
    if (pids[w] > 0 && waitpid(pids[w], &status, WNOHANG) == pids[w]) {
      fprintf(stderr, "loadgen: worker %d ended (%s %d)\n", w, WIFSIGNALED(status) ? "signal" : "exit",
              WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
      pids[w] = 0;
      return 1;
    }
  }
  return 0;
}

static void stop_workers(int n) {
  for (int w = 0; w < n; w++)
    if (pids[w] > 0) kill(pids[w], SIGTERM);
  for (int w = 0; w < n; w++)
    if (pids[w] > 0) waitpid(pids[w], NULL, 0);
}

static char buf[1 << 16];

// ------------------------------------------------------------------------------------------------
// Server

static int s_port, s_ports, s_nips;
static struct in_addr s_ips[MAX_ADDRS];

static void server_worker(int w, int workers) {
  (void)workers;
  struct wstats* st = &sh->w[w];
  long cap = fd_capacity(1 << 20);
  // Bytes of answer not yet written, per descriptor (a full send buffer; rare with small messages).
  uint32_t* owed = calloc(cap, sizeof *owed);
  uint8_t* listener = calloc(cap, 1);
  int ep = epoll_create1(0);
  for (int i = 0; i < s_nips; i++) {
    for (int p = 0; p < s_ports; p++) {
      int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      int one = 1;
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
      struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(s_port + p), .sin_addr = s_ips[i]};
      if (bind(fd, (struct sockaddr*)&a, sizeof a) || listen(fd, 65535)) {
        fprintf(stderr, "loadgen server: listen on %s:%d: %s\n", inet_ntoa(s_ips[i]), s_port + p,
                strerror(errno));
        _exit(1);
      }
      listener[fd] = 1;
      struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
      epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
  }
  __atomic_store_n(&st->listening, 1, __ATOMIC_RELEASE);

  static struct epoll_event events[1024];
  while (!stop) {
    int n = epoll_wait(ep, events, 1024, 200);
    for (int e = 0; e < n; e++) {
      int fd = events[e].data.fd;
      if (listener[fd]) {
        for (;;) {
          int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK);
          if (c < 0) {
            if (errno != EAGAIN && errno != EINTR) ADD(st->accept_errors, 1);
            break;
          }
          int one = 1;
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          owed[c] = 0;
          struct epoll_event ev = {.events = EPOLLIN, .data.fd = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
          ADD(st->accepted, 1);
        }
        continue;
      }
      int dead = (events[e].events & (EPOLLERR | EPOLLHUP)) != 0;
      if (!dead && (events[e].events & EPOLLIN)) {
        for (;;) {
          ssize_t r = read(fd, buf, sizeof buf / ANSWER_FACTOR);
          if (r > 0) {
            ADD(st->bytes_in, r);
            owed[fd] += r * ANSWER_FACTOR;
            continue;
          }
          if (r == 0 || (errno != EAGAIN && errno != EINTR)) dead = 1;
          break;
        }
      }
      while (!dead && owed[fd] > 0) {
        size_t want = owed[fd] < sizeof buf ? owed[fd] : sizeof buf;
        ssize_t wr = write(fd, buf, want);
        if (wr > 0) {
          owed[fd] -= wr;
          ADD(st->bytes_out, wr);
          continue;
        }
        if (wr < 0 && errno != EAGAIN && errno != EINTR) dead = 1;
        break;
      }
      if (dead) {
        close(fd);  // also leaves the epoll set
        owed[fd] = 0;
        ADD(st->closed, 1);
        continue;
      }
      struct epoll_event ev = {.events = EPOLLIN | (owed[fd] ? EPOLLOUT : 0), .data.fd = fd};
      epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
    }
  }
}

static int run_server(int argc, char** argv) {
  long flows = atol(arg(argc, argv, "flows", NULL));
  s_port = atoi(arg(argc, argv, "port", NULL));
  s_ports = atoi(arg(argc, argv, "ports", NULL));
  s_nips = parse_addrs(arg(argc, argv, "ips", NULL), s_ips);
  if (flows < 1 || s_port < 1 || s_ports < 1 || s_port + s_ports > 65536) {
    fprintf(stderr, "loadgen: flows >= 1, ports must fit in 1..65535\n");
    return 2;
  }
  long cap = fd_capacity(flows + FD_SLACK + (long)s_nips * s_ports) - FD_SLACK - (long)s_nips * s_ports;
  if (cap < 100) {
    fprintf(stderr, "loadgen: RLIMIT_NOFILE is too low for %d listeners\n", s_nips * s_ports);
    return 1;
  }
  // The kernel spreads connections over the workers at random: each gets room for 1.6× its share.
  int workers = (int)((flows * 16 / 10 + cap - 1) / cap);
  if (workers < 1) workers = 1;
  if (workers > MAX_WORKERS) {
    fprintf(stderr, "loadgen: %ld connections need more than %d workers\n", flows, MAX_WORKERS);
    return 1;
  }
  fork_workers(workers, server_worker);
  for (;;) {
    int listening = 0;
    for (int w = 0; w < workers; w++) listening += __atomic_load_n(&sh->w[w].listening, __ATOMIC_ACQUIRE);
    if (listening == workers) break;
    if (stop || worker_died(workers)) {
      stop_workers(workers);
      return 1;
    }
    usleep(1000);
  }
  printf("ready %d\n", workers);
  while (!stop) {
    if (worker_died(workers)) {
      stop_workers(workers);
      return 1;
    }
    usleep(100000);
  }
  stop_workers(workers);
  uint64_t accepted = TOTAL(accepted, workers), closed = TOTAL(closed, workers);
  printf("{\"role\":\"server\",\"workers\":%d,\"accepted\":%llu,\"closed\":%llu,\"open\":%llu,\"bytes_in\":%llu,"
         "\"bytes_out\":%llu,\"accept_errors\":%llu}\n",
         workers, (unsigned long long)accepted, (unsigned long long)closed, (unsigned long long)(accepted - closed),
         (unsigned long long)TOTAL(bytes_in, workers), (unsigned long long)TOTAL(bytes_out, workers),
         (unsigned long long)TOTAL(accept_errors, workers));
  return 0;
}

// ------------------------------------------------------------------------------------------------
// Client

enum { LIVE = 1, SHORT = 2, INPUT = 3 };
enum { CONNECTING = 1, UP = 2 };

struct live {
  int fd;
  uint32_t owed;  // answer bytes still expected
  uint8_t state;
};

struct shortc {
  int fd;
  uint32_t to_send, owed;
  int marker;  // sequence number of a marker, or 0 for churn
  uint8_t state;
};

static struct in_addr clients[MAX_ADDRS], servers[MAX_ADDRS], churn_from, marker_from;
static int nclients, nservers, port0, nports, ep;
static long flows, inflight_max;
static double period;

// Connection i's 4-tuple: client i % C, server (i / C) % S, port (i / (C·S)) % P, so neighbours in i
// differ in client first; IP_BIND_ADDRESS_NO_PORT lets the kernel pick the source port per 4-tuple,
// giving each (client, server, port) its own ~64k ports.
static int open_socket(struct in_addr from, struct in_addr to, int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in local = {.sin_family = AF_INET, .sin_addr = from};
  struct sockaddr_in remote = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr = to};
  if (bind(fd, (struct sockaddr*)&local, sizeof local) ||
      (connect(fd, (struct sockaddr*)&remote, sizeof remote) && errno != EINPROGRESS)) {
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

static inline uint64_t tag(int kind, uint32_t i) { return ((uint64_t)kind << 32) | i; }

// A worker owns connections w, w + k, w + 2k, … (k workers) as its local 0, 1, 2, …; its message m goes
// out at talk_start + (m·k + w)·period/N, so all workers' sends together are spread evenly.
static void client_worker(int w, int k) {
  struct wstats* st = &sh->w[w];
  long n = (flows - w + k - 1) / k;
  struct live* conns = calloc(n, sizeof *conns);
  uint32_t* todo = malloc(n * sizeof *todo);  // connections waiting to be opened, as a ring
  long todo_head = 0, todo_len = n, inflight = 0, limit = (inflight_max + k - 1) / k;
  for (long j = 0; j < n; j++) todo[j] = j;
  int wep = epoll_create1(0);
  static struct epoll_event events[4096];
  uint64_t due_done = 0;

  while (!stop) {
    while (todo_len > 0 && inflight < limit) {
      uint32_t j = todo[todo_head];
      uint64_t i = w + (uint64_t)j * k;
      int fd = open_socket(clients[i % nclients], servers[(i / nclients) % nservers],
                           port0 + (int)((i / ((uint64_t)nclients * nservers)) % nports));
      if (fd < 0) {
        ADD(st->connect_errors, 1);
        if (errno == EMFILE || errno == ENFILE) {
          fprintf(stderr, "loadgen: worker %d: %s\n", w, strerror(errno));
          _exit(1);
        }
        break;  // e.g. EADDRNOTAVAIL for a moment: retry on the next turn
      }
      conns[j] = (struct live){.fd = fd, .owed = 0, .state = CONNECTING};
      struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = j};
      epoll_ctl(wep, EPOLL_CTL_ADD, fd, &ev);
      todo_head = (todo_head + 1) % n;
      todo_len--;
      inflight++;
    }
    double start = sh->talk_start, now = now_ms(CLOCK_MONOTONIC), wait = 5;
    if (start > 0 && now >= start) {
      double g = (now - start) * flows / period;  // global messages due
      uint64_t due = g < w ? 0 : (uint64_t)((g - w) / k) + 1;
      if (due > due_done + (uint64_t)n) {
        ADD(st->skipped, due - due_done - n);  // a stall longer than a period: those turns are lost
        due_done = due - n;
      }
      for (; due_done < due; due_done++) {
        struct live* c = &conns[due_done % n];
        if (c->state != UP || c->owed > 0) {
          ADD(st->skipped, 1);
          continue;
        }
        uint32_t len = 100 + (uint32_t)(((due_done * k + w) * 2654435761ull) % 201);
        ssize_t wr = write(c->fd, buf, len);
        if (wr > 0) {
          ADD(st->bytes_out, wr);
          ADD(st->messages, 1);
          c->owed = (uint32_t)wr * ANSWER_FACTOR;
        } else {
          ADD(st->skipped, 1);
        }
      }
      double next = start + ((double)due_done * k + w) * period / flows;
      if (next - now < wait) wait = next - now;
    }
    int got = epoll_wait(wep, events, 4096, wait > 0 ? (int)(wait + 0.999) : 0);
    for (int e = 0; e < got; e++) {
      uint32_t j = (uint32_t)events[e].data.u64;
      uint32_t ev = events[e].events;
      struct live* c = &conns[j];
      int dead = (ev & (EPOLLERR | EPOLLHUP)) != 0;
      if (!dead && c->state == CONNECTING && (ev & EPOLLOUT)) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
          dead = 1;
        } else {
          c->state = UP;
          ADD(st->established, 1);
          inflight--;
          struct epoll_event mod = {.events = EPOLLIN, .data.u64 = j};
          epoll_ctl(wep, EPOLL_CTL_MOD, c->fd, &mod);
        }
      }
      if (!dead && (ev & EPOLLIN)) {
        for (;;) {
          ssize_t r = read(c->fd, buf, sizeof buf);
          if (r > 0) {
            ADD(st->bytes_in, r);
            c->owed = (uint32_t)r >= c->owed ? 0 : c->owed - r;
            continue;
          }
          if (r == 0 || (errno != EAGAIN && errno != EINTR)) dead = 1;
          break;
        }
      }
      if (dead) {
        // Opened again: the bench keeps N connections alive, whatever broke one.
        if (c->state == CONNECTING) {
          inflight--;
          ADD(st->connect_errors, 1);
        } else {
          __atomic_sub_fetch(&st->established, 1, __ATOMIC_RELAXED);
          ADD(st->reconnects, 1);
        }
        close(c->fd);
        c->state = 0;
        todo[(todo_head + todo_len) % n] = j;
        todo_len++;
      }
    }
  }
}

// The parent's own connections: churn and markers.
static struct shortc shorts[SHORT_SLOTS];
static int short_free[SHORT_SLOTS], nshort_free;
static unsigned long long churn_done, churn_failed, churn_skipped, markers, short_bytes_out, short_bytes_in;

static int open_short(struct in_addr from, int server, int port, uint32_t bytes, int marker) {
  if (nshort_free == 0) return -1;
  int fd = open_socket(from, servers[server], port);
  if (fd < 0) return -1;
  int s = short_free[--nshort_free];
  shorts[s] = (struct shortc){.fd = fd, .to_send = bytes, .owed = bytes * ANSWER_FACTOR, .marker = marker,
                              .state = CONNECTING};
  struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = tag(SHORT, s)};
  epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  return 0;
}

static void close_short(int s, int ok) {
  close(shorts[s].fd);
  if (!shorts[s].marker) {
    if (ok)
      churn_done++;
    else
      churn_failed++;
  } else if (!ok) {
    printf("marker-failed %d\n", shorts[s].marker);
  }
  shorts[s].fd = -1;
  short_free[nshort_free++] = s;
}

static void on_short(int s, uint32_t events) {
  struct shortc* c = &shorts[s];
  if (events & (EPOLLERR | EPOLLHUP)) {
    close_short(s, 0);
    return;
  }
  if (c->state == CONNECTING && (events & EPOLLOUT)) {
    c->state = UP;
    if (c->marker) printf("marked %d %.3f\n", c->marker, now_ms(CLOCK_REALTIME));
  }
  while (c->to_send > 0) {
    uint32_t want = c->to_send < sizeof buf ? c->to_send : sizeof buf;
    ssize_t w = write(c->fd, buf, want);
    if (w > 0) {
      c->to_send -= w;
      short_bytes_out += w;
      continue;
    }
    if (w < 0 && errno != EAGAIN && errno != EINTR) {
      close_short(s, 0);
      return;
    }
    break;
  }
  for (;;) {
    ssize_t r = read(c->fd, buf, sizeof buf);
    if (r > 0) {
      short_bytes_in += r;
      c->owed = (uint32_t)r >= c->owed ? 0 : c->owed - r;
      continue;
    }
    if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
      close_short(s, c->owed == 0 && c->to_send == 0);
      return;
    }
    break;
  }
  if (c->owed == 0 && c->to_send == 0) {
    if (c->marker) printf("answered %d %.3f\n", c->marker, now_ms(CLOCK_REALTIME));
    close_short(s, 1);
    return;
  }
  struct epoll_event ev = {.events = EPOLLIN | (c->to_send ? EPOLLOUT : 0), .data.u64 = tag(SHORT, s)};
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static int run_client(int argc, char** argv) {
  flows = atol(arg(argc, argv, "flows", NULL));
  period = atof(arg(argc, argv, "period", NULL));
  double churn = atof(arg(argc, argv, "churn", "0"));
  inflight_max = atol(arg(argc, argv, "inflight", "1024"));
  port0 = atoi(arg(argc, argv, "port", NULL));
  nports = atoi(arg(argc, argv, "ports", NULL));
  nclients = parse_addrs(arg(argc, argv, "clients", NULL), clients);
  nservers = parse_addrs(arg(argc, argv, "servers", NULL), servers);
  parse_addrs(arg(argc, argv, "churn-from", NULL), &churn_from);
  parse_addrs(arg(argc, argv, "marker-from", NULL), &marker_from);
  if (flows < 1 || flows > 10000000 || period < 1 || nports < 1 || port0 + nports > 65536 || inflight_max < 1) {
    fprintf(stderr, "loadgen: flows 1..10000000, period >= 1 ms, ports in 1..65535, inflight >= 1\n");
    return 2;
  }
  long cap = fd_capacity(flows + FD_SLACK) - FD_SLACK;
  if (cap < 100) {
    fprintf(stderr, "loadgen: RLIMIT_NOFILE is too low\n");
    return 1;
  }
  int workers = (int)((flows + cap - 1) / cap);
  if (workers > MAX_WORKERS) {
    fprintf(stderr, "loadgen: %ld connections need more than %d workers\n", flows, MAX_WORKERS);
    return 1;
  }
  memset(buf, 'x', sizeof buf);
  fork_workers(workers, client_worker);

  for (int s = 0; s < SHORT_SLOTS; s++) short_free[nshort_free++] = SHORT_SLOTS - 1 - s;
  ep = epoll_create1(0);
  fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
  struct epoll_event in_ev = {.events = EPOLLIN, .data.u64 = tag(INPUT, 0)};
  epoll_ctl(ep, EPOLL_CTL_ADD, 0, &in_ev);

  double start = now_ms(CLOCK_MONOTONIC), last_progress = start, next_churn = 0;
  int ready = 0, marker_seq = 0;
  char line[256];
  size_t line_len = 0;
  unsigned long long churn_k = 0;
  static struct epoll_event events[256];
  while (!stop) {
    if (worker_died(workers)) {
      stop_workers(workers);
      return 1;
    }
    double now = now_ms(CLOCK_MONOTONIC);
    uint64_t established = TOTAL(established, workers);
    if (!ready && TOTAL(connect_errors, workers) > (uint64_t)flows + 10000) {
      fprintf(stderr, "loadgen: %llu connection attempts failed (%llu of %ld established)\n",
              (unsigned long long)TOTAL(connect_errors, workers), (unsigned long long)established, flows);
      stop_workers(workers);
      return 1;
    }
    if (!ready && now - last_progress >= 1000) {
      printf("established %llu %ld\n", (unsigned long long)established, flows);
      last_progress = now;
    }
    if (!ready && established == (uint64_t)flows) {
      ready = 1;
      sh->talk_start = now;
      next_churn = now;
      printf("ready %ld %.0f %d\n", flows, now - start, workers);
    }
    while (ready && churn > 0 && next_churn <= now) {
      if (open_short(churn_from, (int)(churn_k % nservers), port0 + (int)((churn_k / nservers) % nports),
                     CHURN_BYTES, 0) != 0)
        churn_skipped++;
      churn_k++;
      next_churn += 1000.0 / churn;
    }
    int n = epoll_wait(ep, events, 256, ready && churn > 0 ? 2 : 20);
    for (int e = 0; e < n; e++) {
      int kind = (int)(events[e].data.u64 >> 32);
      if (kind == SHORT) {
        on_short((int)(uint32_t)events[e].data.u64, events[e].events);
        continue;
      }
      for (;;) {  // stdin
        ssize_t r = read(0, line + line_len, sizeof line - 1 - line_len);
        if (r <= 0) {
          if (r == 0) epoll_ctl(ep, EPOLL_CTL_DEL, 0, NULL);  // closed: no more markers
          break;
        }
        line_len += r;
        char* nl;
        while ((nl = memchr(line, '\n', line_len))) {
          *nl = 0;
          unsigned bytes;
          if (sscanf(line, "mark %u", &bytes) == 1 && bytes > 0) {
            markers++;
            if (open_short(marker_from, 0, port0, bytes, ++marker_seq) != 0) printf("marker-failed %d\n", marker_seq);
          }
          line_len -= (nl + 1 - line);
          memmove(line, nl + 1, line_len);
        }
        if (line_len == sizeof line - 1) line_len = 0;
      }
    }
  }
  stop_workers(workers);
  printf("{\"role\":\"client\",\"workers\":%d,\"flows\":%ld,\"established\":%llu,\"connect_errors\":%llu,"
         "\"reconnects\":%llu,\"messages\":%llu,\"skipped_busy\":%llu,\"bytes_out\":%llu,\"bytes_in\":%llu,"
         "\"churn_done\":%llu,\"churn_failed\":%llu,\"churn_skipped\":%llu,\"markers\":%llu}\n",
         workers, flows, (unsigned long long)TOTAL(established, workers),
         (unsigned long long)TOTAL(connect_errors, workers), (unsigned long long)TOTAL(reconnects, workers),
         (unsigned long long)TOTAL(messages, workers), (unsigned long long)TOTAL(skipped, workers),
         (unsigned long long)TOTAL(bytes_out, workers) + short_bytes_out,
         (unsigned long long)TOTAL(bytes_in, workers) + short_bytes_in, churn_done, churn_failed, churn_skipped,
         markers);
  return 0;
}

int main(int argc, char** argv) {
  struct sigaction sa = {.sa_handler = on_signal};
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  setvbuf(stdout, NULL, _IOLBF, 0);
  sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (sh == MAP_FAILED) {
    perror("loadgen: mmap");
    return 1;
  }
  if (argc >= 2 && strcmp(argv[1], "server") == 0) return run_server(argc, argv);
  if (argc >= 2 && strcmp(argv[1], "client") == 0) return run_client(argc, argv);
  fprintf(stderr,
          "usage: loadgen server flows=<N> port=<first> ports=<n> ips=<a,b,…>\n"
          "       loadgen client flows=<N> period=<ms> churn=<per s> port=<first> ports=<n> clients=<a,…>\n"
          "                      servers=<a,…> churn-from=<ip> marker-from=<ip> [inflight=<n>]\n");
  return 2;
}
