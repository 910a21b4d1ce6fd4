/* oss-relay: command line, start-up checks, worker threads and signals. */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "admin.h"
#include "listen.h"
#include "log.h"
#include "script.h"
#include "worker.h"

#define RELAY_MAX_WORKERS 256

typedef struct relay_main_s {
  const char *script_path;
  relay_config_t cfg;
  int nworkers;
  relay_worker_t *workers;
  relay_metrics_slots_t slots;  /* names to slots, shared by every thread */
  relay_health_board_t *board;  /* active check results, admin thread to workers */
  relay_metrics_t **metrics;    /* per worker, when the admin listener is on */
  relay_admin_t *admin;
  uv_thread_t *threads;
  int *fds;
  uv_loop_t *loop;
  uv_signal_t sigint, sigterm, sighup;
  int stopping;
} relay_main_t;

static void usage(FILE *f) {
  fprintf(f,
          "usage: oss-relay [--script FILE] [--check]\n"
          "       oss-relay --run FILE.lua\n"
          "\n"
          "A reverse proxy for OpenAI-compatible LLM servers that turns gpt-oss harmony\n"
          "markers in chat-completion responses into <think>...</think>.\n"
          "\n"
          "  --script FILE  use a Lua script instead of the built-in stock script\n"
          "                 (also RELAY_SCRIPT)\n"
          "  --check        load the script, report errors, print the configuration, exit\n"
          "  --run FILE     run a Lua file with the relay module loaded (tests, tools)\n"
          "  --version      print the version\n"
          "  --help         this text\n"
          "\n"
          "The stock script reads LISTEN_ADDR (0.0.0.0), LISTEN_PORT (8080),\n"
          "UPSTREAM_HOST (127.0.0.1), UPSTREAM_PORT (1234) or UPSTREAM_SERVERS\n"
          "(host:port,host:port: several servers, balanced, with failover),\n"
          "RELAY_ADMIN_PORT (off) and RELAY_ADMIN_ADDR (127.0.0.1) for GET /healthz and\n"
          "GET /metrics, RELAY_HEALTH_PATH (/v1/models), RELAY_HEALTH_INTERVAL,\n"
          "LOG_LEVEL (info), WORKERS, RELAY_MODE (tags|field|strip) and more: see README.md.\n");
}

/* A listening socket per worker, all on one port (SO_REUSEPORT): the kernel
 * spreads connections and no accept lock is shared between threads. */
static int open_listener(const relay_config_t *cfg, char *err, size_t errlen) {
  return relay_listen_socket(cfg->listen_addr, cfg->listen_port, 1, "LISTEN_ADDR", "", err, errlen);
}

static void worker_thread(void *arg) {
  relay_worker_t *w = arg;
  uv_run(&w->loop, UV_RUN_DEFAULT);
}

static void on_stop_signal(uv_signal_t *sig, int signum) {
  relay_main_t *m = sig->data;
  if (m->stopping) {
    relay_log_warn("second signal: exiting now");
    exit(1);
  }
  m->stopping = 1;
  relay_log_info("%s: no longer accepting; letting exchanges in flight finish (up to %lu ms)",
                 signum == SIGINT ? "SIGINT" : "SIGTERM", m->cfg.shutdown_timeout_ms);
  relay_admin_draining(m->admin);
  relay_workers_signal(m->workers, m->nworkers, 0);
  uv_close((uv_handle_t *)&m->sigint, NULL);
  uv_close((uv_handle_t *)&m->sigterm, NULL);
  uv_close((uv_handle_t *)&m->sighup, NULL);
}

static void on_hup_signal(uv_signal_t *sig, int signum) {
  relay_main_t *m = sig->data;
  relay_log_info("SIGHUP: reloading %s", m->script_path ? m->script_path : "the stock script");
  relay_workers_signal(m->workers, m->nworkers, 1);
  relay_admin_reload(m->admin);
}

/* What the threads share, and the admin thread (checks, /healthz,
 * /metrics). Metrics cells exist only while someone can read them: with
 * the admin listener off, nothing is counted. */
static int start_admin(relay_main_t *m, int admin_fd) {
  char err[512];
  if (relay_metrics_slots_init(&m->slots)) return -1;
  m->board = calloc(1, sizeof *m->board);
  if (!m->board) return -1;
  if (m->cfg.admin_port) {
    m->metrics = calloc((size_t)m->nworkers, sizeof *m->metrics);
    if (!m->metrics) return -1;
    for (int i = 0; i < m->nworkers; i++)
      if (!(m->metrics[i] = relay_metrics_new())) return -1;
  }
  relay_admin_opts_t o = {m->script_path, &m->cfg, m->metrics, (size_t)m->nworkers, &m->slots, m->board, admin_fd};
  m->admin = relay_admin_new(&o, err, sizeof err);
  if (!m->admin) {
    relay_log_error("%s", err);
    return -1;
  }
  return 0;
}

static int count_cpus(void) {
  uv_cpu_info_t *info;
  int n = 0;
  if (uv_cpu_info(&info, &n) == 0) uv_free_cpu_info(info, n);
  return n > 0 ? n : 1;
}

/* "h:p,h:p": an upstream's servers, for the start-up line and --check. */
static void servers_text(const relay_upstream_cfg_t *u, char *out, size_t len) {
  size_t used = 0;
  out[0] = 0;
  for (unsigned k = 0; k < u->nservers && used + 1 < len; k++) {
    char one[RELAY_HOST_MAX + 16];
    relay_config_server_name(&u->servers[k], one, sizeof one);
    int n = snprintf(out + used, len - used, "%s%s", k ? "," : "", one);
    if (n < 0) break;
    used += (size_t)n;
  }
}

static void print_config(const relay_config_t *cfg, int workers) {
  printf("listen %s:%d\n", cfg->listen_addr, cfg->listen_port);
  if (cfg->admin_port) printf("admin %s:%d\n", cfg->admin_addr, cfg->admin_port);
  else printf("admin off\n");
  for (size_t i = 0; i < cfg->nupstreams; i++) {
    const relay_upstream_cfg_t *u = &cfg->upstreams[i];
    char servers[4096];
    servers_text(u, servers, sizeof servers);
    unsigned long every = relay_config_health_interval(cfg, u);
    printf("upstream %s %s", u->name, servers);
    if (every) printf(" health=%s every=%lums timeout=%lums\n", u->health_path, every, u->health_timeout_ms);
    else printf(" health=passive\n");
  }
  printf("workers %d\n", workers);
  printf("timeouts connect=%lums header=%lums idle=%lums body=%lums send=%lums keepalive=%lums shutdown=%lums\n",
         cfg->connect_timeout_ms, cfg->header_timeout_ms, cfg->idle_timeout_ms, cfg->body_timeout_ms,
         cfg->send_timeout_ms, cfg->keepalive_timeout_ms, cfg->shutdown_timeout_ms);
  printf("script timeout=%lums memory=%zu\n", cfg->script_timeout_ms, cfg->script_memory);
}

static int start_workers(relay_main_t *m, int first_fd) {
  char err[512];
  for (int i = 0; i < m->nworkers; i++) {
    relay_script_t *s = relay_script_new(m->script_path, err, sizeof err);
    if (!s) {
      relay_log_error("%s", err);
      return -1;
    }
    relay_worker_t *w = &m->workers[i];
    relay_proxy_shared_t shared = {m->metrics ? m->metrics[i] : NULL, &m->slots, m->board};
    int rc = relay_worker_init(w, i, s, m->script_path, &shared);
    if (rc) {
      relay_log_error("worker %d: %s", i, relay_strerror(rc));
      return -1;
    }
    int fd = i == 0 ? first_fd : open_listener(&m->cfg, err, sizeof err);
    if (fd < 0) {
      relay_log_error("%s", err);
      return -1;
    }
    rc = relay_worker_listen(w, fd);
    if (rc) {
      relay_log_error("cannot listen on %s:%d: %s", m->cfg.listen_addr, m->cfg.listen_port, relay_strerror(rc));
      return -1;
    }
  }
  for (int i = 0; i < m->nworkers; i++) {
    int rc = uv_thread_create(&m->threads[i], worker_thread, &m->workers[i]);
    if (rc) {
      /* Workers already running hold the port; nothing to unwind at start-up. */
      relay_log_error("cannot start worker %d: %s", i, relay_strerror(rc));
      exit(1);
    }
  }
  return 0;
}

int main(int argc, char **argv) {
  relay_main_t m;
  memset(&m, 0, sizeof m);
  int check = 0;
  const char *run = NULL;
  m.script_path = getenv("RELAY_SCRIPT");
  if (m.script_path && !*m.script_path) m.script_path = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      usage(stdout);
      return 0;
    } else if (!strcmp(argv[i], "--version")) {
      printf("oss-relay %s\n", RELAY_VERSION);
      return 0;
    } else if (!strcmp(argv[i], "--check")) {
      check = 1;
    } else if (!strcmp(argv[i], "--script") && i + 1 < argc) {
      m.script_path = argv[++i];
    } else if (!strcmp(argv[i], "--run") && i + 1 < argc) {
      run = argv[++i];
    } else {
      fprintf(stderr, "oss-relay: unknown argument '%s'\n", argv[i]);
      usage(stderr);
      return 2;
    }
  }
  const char *level = getenv("LOG_LEVEL");
  relay_log_level_t lv = RELAY_LOG_INFO;
  if (level && *level && relay_log_parse_level(level, &lv)) {
    fprintf(stderr, "oss-relay: LOG_LEVEL '%s' is not one of error, warn, info, debug\n", level);
    return 1;
  }
  relay_log_set_level(lv);
  char err[1024];
  if (run) {
    if (relay_script_run_file(run, err, sizeof err) != 0) {
      fprintf(stderr, "%s\n", err);
      return 1;
    }
    return 0;
  }
  relay_script_t probe;
  if (relay_script_load(&probe, m.script_path, err, sizeof err) != 0) {
    fprintf(stderr, "oss-relay: %s\n", err);
    return 1;
  }
  m.cfg = probe.site.cfg;
  if (probe.log_level >= 0) relay_log_set_level((relay_log_level_t)probe.log_level);
  relay_script_dispose(&probe);
  m.nworkers = m.cfg.workers > 0 ? m.cfg.workers : count_cpus();
  if (m.nworkers > RELAY_MAX_WORKERS) m.nworkers = RELAY_MAX_WORKERS;
  if (check) {
    printf("%s: OK\n", m.script_path ? m.script_path : "stock script");
    print_config(&m.cfg, m.nworkers);
    return 0;
  }
  int fd = open_listener(&m.cfg, err, sizeof err);
  if (fd < 0) {
    fprintf(stderr, "oss-relay: %s\n", err);
    return 1;
  }
  int admin_fd = -1;
  if (m.cfg.admin_port) {
    admin_fd = relay_admin_bind(&m.cfg, err, sizeof err);
    if (admin_fd < 0) {
      fprintf(stderr, "oss-relay: %s\n", err);
      return 1;
    }
  }
  m.workers = calloc((size_t)m.nworkers, sizeof *m.workers);
  m.threads = calloc((size_t)m.nworkers, sizeof *m.threads);
  if (!m.workers || !m.threads) return 1;
  signal(SIGPIPE, SIG_IGN);
  m.loop = uv_default_loop();
  /* The handlers go in before the first connection can be accepted: a
   * SIGHUP (or SIGTERM) that came while the workers were already serving but
   * the main thread had not got here yet killed the process (the default
   * action). Signals that arrive early wait in libuv until uv_run. Without
   * its handlers the relay could not be stopped gracefully: start-up fails. */
  if (uv_signal_init(m.loop, &m.sigint) || uv_signal_init(m.loop, &m.sigterm) || uv_signal_init(m.loop, &m.sighup)) {
    relay_log_error("cannot set up signal handling");
    return 1;
  }
  m.sigint.data = m.sigterm.data = m.sighup.data = &m;
  if (uv_signal_start(&m.sigint, on_stop_signal, SIGINT) || uv_signal_start(&m.sigterm, on_stop_signal, SIGTERM) ||
      uv_signal_start(&m.sighup, on_hup_signal, SIGHUP)) {
    relay_log_error("cannot set up signal handling");
    return 1;
  }
  if (start_admin(&m, admin_fd) != 0) {
    relay_log_error("cannot start the admin thread");
    return 1;
  }
  if (start_workers(&m, fd) != 0) return 1;
  if (relay_admin_start(m.admin)) {
    relay_log_error("cannot start the admin thread");
    exit(1);
  }
  char servers[4096];
  servers_text(&m.cfg.upstreams[0], servers, sizeof servers);
  char admin[RELAY_HOST_MAX + 32] = "off";
  if (m.cfg.admin_port)
    snprintf(admin, sizeof admin, strchr(m.cfg.admin_addr, ':') ? "[%s]:%d" : "%s:%d", m.cfg.admin_addr,
             m.cfg.admin_port);
  relay_log_info("oss-relay %s listening on %s:%d (%d worker%s), upstream %s, admin %s, script %s", RELAY_VERSION,
                 m.cfg.listen_addr, m.cfg.listen_port, m.nworkers, m.nworkers == 1 ? "" : "s", servers, admin,
                 m.script_path ? m.script_path : "stock");
  uv_run(m.loop, UV_RUN_DEFAULT);
  for (int i = 0; i < m.nworkers; i++) uv_thread_join(&m.threads[i]);
  relay_admin_stop(m.admin); /* after the workers: it reads their metrics to the end */
  for (int i = 0; i < m.nworkers; i++) relay_worker_dispose(&m.workers[i]);
  for (int i = 0; m.metrics && i < m.nworkers; i++) relay_metrics_free(m.metrics[i]);
  free(m.metrics);
  free(m.board);
  relay_metrics_slots_dispose(&m.slots);
  free(m.workers);
  free(m.threads);
  uv_loop_close(m.loop);
  relay_log_info("stopped");
  return 0;
}
