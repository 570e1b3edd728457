// Keeps sockets × ports distinct UDP flows active for bench/ebpf/receiver.mjs: `sockets` sockets bound to
// consecutive source ports each send one small datagram to each of `ports` consecutive destination ports,
// every `period` milliseconds (sendmmsg, 1024 datagrams per call). Runs until SIGTERM or SIGINT, then
// prints what it sent as one JSON line. Prints "ready" once the first round has gone out.
//
//   flowgen <dst IPv4> <first dst port> <ports> <first src port> <sockets> <period ms>
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define VLEN 1024

static volatile sig_atomic_t stop;
static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

static double ms_between(const struct timespec* a, const struct timespec* b) {
  return (b->tv_sec - a->tv_sec) * 1e3 + (b->tv_nsec - a->tv_nsec) / 1e6;
}

int main(int argc, char** argv) {
  if (argc != 7) {
    fprintf(stderr, "usage: flowgen <dst IPv4> <first dst port> <ports> <first src port> <sockets> <period ms>\n");
    return 2;
  }
  struct in_addr dst;
  if (inet_pton(AF_INET, argv[1], &dst) != 1) {
    fprintf(stderr, "flowgen: %s is not an IPv4 address\n", argv[1]);
    return 2;
  }
  int dport = atoi(argv[2]), ports = atoi(argv[3]), sport = atoi(argv[4]), sockets = atoi(argv[5]);
  long period = atol(argv[6]);
  if (ports < 1 || sockets < 1 || dport + ports > 65536 || sport + sockets > 65536 || period < 1) {
    fprintf(stderr, "flowgen: ports and sockets must fit in 1..65535, period >= 1 ms\n");
    return 2;
  }
  struct sigaction sa = {.sa_handler = on_signal};
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  int* fds = calloc(sockets, sizeof *fds);
  for (int s = 0; s < sockets; s++) {
    fds[s] = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in local = {.sin_family = AF_INET, .sin_port = htons(sport + s)};
    if (fds[s] < 0 || bind(fds[s], (struct sockaddr*)&local, sizeof local)) {
      fprintf(stderr, "flowgen: socket on port %d: %s\n", sport + s, strerror(errno));
      return 1;
    }
  }
  // One message per destination port, prepared once; every socket sends the same set.
  struct sockaddr_in* to = calloc(ports, sizeof *to);
  struct mmsghdr* msgs = calloc(ports, sizeof *msgs);
  static char payload[32] = "netmon flowgen";
  struct iovec iov = {.iov_base = payload, .iov_len = sizeof payload};
  for (int p = 0; p < ports; p++) {
    to[p] = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(dport + p), .sin_addr = dst};
    msgs[p].msg_hdr.msg_name = &to[p];
    msgs[p].msg_hdr.msg_namelen = sizeof to[p];
    msgs[p].msg_hdr.msg_iov = &iov;
    msgs[p].msg_hdr.msg_iovlen = 1;
  }

  unsigned long long sent = 0, failed = 0, rounds = 0, late = 0;
  double burst_max = 0, burst_sum = 0;
  struct timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  while (!stop) {
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (int s = 0; s < sockets && !stop; s++) {
      for (int off = 0; off < ports;) {
        int n = ports - off < VLEN ? ports - off : VLEN;
        int r = sendmmsg(fds[s], msgs + off, n, 0);
        if (r < 0) {
          if (errno == EINTR) continue;
          // A datagram the socket refused (ENOBUFS, …): skipped, counted; the flow still sent this round
          // unless every attempt failed, which the failed count shows.
          failed++;
          off++;
          continue;
        }
        sent += r;
        off += r;
      }
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    double burst = ms_between(&start, &end);
    burst_sum += burst;
    if (burst > burst_max) burst_max = burst;
    if (rounds++ == 0) {
      printf("ready\n");
      fflush(stdout);
    }
    next.tv_nsec += (period % 1000) * 1000000L;
    next.tv_sec += period / 1000 + next.tv_nsec / 1000000000L;
    next.tv_nsec %= 1000000000L;
    if (ms_between(&next, &end) > 0) {
      late++;  // the burst outlasted the period: start the next one now, and keep the schedule from here
      next = end;
      continue;
    }
    while (!stop && clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR) {
    }
  }
  printf("{\"flows\":%d,\"rounds\":%llu,\"sent\":%llu,\"failed\":%llu,\"late_rounds\":%llu,"
         "\"burst_ms_mean\":%.2f,\"burst_ms_max\":%.2f}\n",
         ports * sockets, rounds, sent, failed, late, rounds ? burst_sum / rounds : 0, burst_max);
  return 0;
}
