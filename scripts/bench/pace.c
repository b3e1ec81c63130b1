// pace: an open-loop HTTP/1.1 load generator for bench:dataplane's paced
// scenarios. Request k is due at start + k/rate, on connection k % conns, and
// its latency is counted from when it was due, not from when it was sent
// (a request that waits behind a slow one on its connection is charged for the
// wait, as wrk2 and fortio do). wrk's delay() cannot do this: it schedules each
// request relative to the previous response, so connections that meet in a
// slow moment stay together and "1,000 req/s" turns into bursts of ten.
//
// Built by bench:dataplane with the system C compiler (cc -O2); loopback only.
// Usage: pace -r RATE -c CONNS -d SECONDS [-w WARMUP_SECONDS] [-H host] PORT [PATH]
// Prints one JSON object: counts and latency percentiles in microseconds.

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

typedef struct {
  int fd;
  int busy;          // a request is on the wire
  uint64_t next;     // global index of this connection's next request
  uint64_t due_ns;   // when the request in flight was due
  char buf[65536];
  size_t len;
} conn_t;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what) {
  fprintf(stderr, "pace: %s: %s\n", what, strerror(errno));
  exit(2);
}

static int connect_to(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) die("connect 127.0.0.1");
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

// Length of a complete response at the start of buf, or 0 if more is needed,
// -1 if it cannot be framed (only Content-Length and chunked are understood).
static long complete(const char *buf, size_t len) {
  const char *end = memmem(buf, len, "\r\n\r\n", 4);
  if (!end) return 0;
  size_t head = (size_t)(end - buf) + 4;
  for (const char *p = buf; p < end;) {
    const char *eol = memmem(p, (size_t)(end - p) + 2, "\r\n", 2);
    if (!eol) break;
    if ((size_t)(eol - p) > 15 && strncasecmp(p, "content-length:", 15) == 0) {
      size_t body = strtoul(p + 15, NULL, 10);
      return len >= head + body ? (long)(head + body) : 0;
    }
    if ((size_t)(eol - p) > 18 && strncasecmp(p, "transfer-encoding:", 18) == 0) {
      const char *last = memmem(buf + head, len - head, "0\r\n\r\n", 5);
      return last ? (long)(last + 5 - buf) : 0;
    }
    p = eol + 2;
  }
  return -1;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  double rate = 1000, seconds = 10, warmup = 1;
  int conns = 10, opt;
  const char *host = "localhost";
  while ((opt = getopt(argc, argv, "r:c:d:w:H:")) != -1) {
    switch (opt) {
      case 'r': rate = atof(optarg); break;
      case 'c': conns = atoi(optarg); break;
      case 'd': seconds = atof(optarg); break;
      case 'w': warmup = atof(optarg); break;
      case 'H': host = optarg; break;
      default: fprintf(stderr, "usage: pace -r RATE -c CONNS -d SECONDS [-w WARMUP] [-H host] PORT [PATH]\n"); return 2;
    }
  }
  if (optind >= argc || rate <= 0 || conns <= 0 || seconds <= 0) {
    fprintf(stderr, "usage: pace -r RATE -c CONNS -d SECONDS [-w WARMUP] [-H host] PORT [PATH]\n");
    return 2;
  }
  int port = atoi(argv[optind]);
  const char *path = optind + 1 < argc ? argv[optind + 1] : "/";
  char req[1024];
  int reqlen = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, host);

  uint64_t interval = (uint64_t)(1e9 / rate);
  uint64_t total = (uint64_t)((seconds + warmup) * rate);
  uint64_t skip = (uint64_t)(warmup * rate);
  uint32_t *lat = malloc(sizeof(uint32_t) * (total + 1));
  // PACE_TRACE=file writes "due-ms latency-us" per request, in completion order (to find stalls).
  FILE *trace = getenv("PACE_TRACE") ? fopen(getenv("PACE_TRACE"), "w") : NULL;
  uint64_t recorded = 0, errors = 0, late_sends = 0;

  int ep = epoll_create1(EPOLL_CLOEXEC);
  int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  if (ep < 0 || tfd < 0) die("epoll/timerfd");
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)-1};
  epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
  conn_t *cs = calloc((size_t)conns, sizeof(conn_t));
  for (int i = 0; i < conns; i++) {
    cs[i].fd = connect_to(port);
    cs[i].next = (uint64_t)i;
    ev.data.u64 = (uint64_t)i;
    epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
  }

  uint64_t start = now_ns() + 10000000ull;
  uint64_t done = 0;  // requests finished (recorded or failed)
  while (done < total) {
    uint64_t now = now_ns(), wake = UINT64_MAX;
    for (int i = 0; i < conns; i++) {
      conn_t *c = &cs[i];
      if (c->busy || c->next >= total) continue;
      uint64_t due = start + c->next * interval;
      if (due <= now) {
        if (now - due > interval) late_sends++;
        if (write(c->fd, req, (size_t)reqlen) != reqlen) die("write");
        c->busy = 1;
        c->due_ns = due;
        c->len = 0;
      } else if (due < wake) {
        wake = due;
      }
    }
    if (wake != UINT64_MAX) {
      struct itimerspec its = {.it_value = {.tv_sec = (time_t)(wake / 1000000000ull), .tv_nsec = (long)(wake % 1000000000ull)}};
      timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
    }
    struct epoll_event evs[64];
    int n = epoll_wait(ep, evs, 64, -1);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    for (int e = 0; e < n; e++) {
      if (evs[e].data.u64 == (uint64_t)-1) {
        uint64_t x;
        if (read(tfd, &x, sizeof x) < 0 && errno != EAGAIN) die("timerfd");
        continue;
      }
      conn_t *c = &cs[evs[e].data.u64];
      ssize_t r = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
      long whole = 0;
      if (r > 0) {
        c->len += (size_t)r;
        whole = complete(c->buf, c->len);
      }
      if (r == 0 && !c->busy) {
        // The server closed an idle keep-alive connection (nginx does after
        // keepalive_requests): not an error, reconnect.
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = connect_to(port);
        ev.data.u64 = evs[e].data.u64;
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
        continue;
      }
      if (r <= 0 || whole < 0 || c->len == sizeof c->buf) {
        // The connection failed or sent what pace cannot frame: count it, reconnect.
        errors++;
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = connect_to(port);
        ev.data.u64 = evs[e].data.u64;
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
        if (c->busy) { c->busy = 0; c->next += (uint64_t)conns; done++; }
        continue;
      }
      if (whole == 0) continue;
      uint64_t t = now_ns();
      if (c->next >= skip) lat[recorded++] = (uint32_t)((t - c->due_ns) / 1000);
      if (trace) fprintf(trace, "%.3f %llu\n", (double)(c->due_ns - start) / 1e6, (unsigned long long)((t - c->due_ns) / 1000));
      if (strncmp(c->buf, "HTTP/1.1 2", 10) != 0) errors++;
      c->busy = 0;
      c->next += (uint64_t)conns;
      done++;
    }
  }
  double elapsed = (double)(now_ns() - start) / 1e9;
  qsort(lat, recorded, sizeof(uint32_t), cmp_u32);
#define PCT(p) (recorded ? lat[(uint64_t)((double)(recorded - 1) * (p))] : 0)
  printf("{\"rate\":%.0f,\"connections\":%d,\"seconds\":%.1f,\"requests\":%llu,\"recorded\":%llu,\"errors\":%llu,"
         "\"lateSends\":%llu,\"rps\":%.1f,\"p50us\":%u,\"p90us\":%u,\"p99us\":%u,\"p999us\":%u,\"maxUs\":%u}\n",
         rate, conns, seconds, (unsigned long long)total, (unsigned long long)recorded, (unsigned long long)errors,
         (unsigned long long)late_sends, (double)total / elapsed, PCT(0.5), PCT(0.9), PCT(0.99), PCT(0.999),
         recorded ? lat[recorded - 1] : 0);
  return 0;
}
