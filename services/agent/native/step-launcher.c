/*
 * The agent's native step launcher: starts each step's shell
 * (`/bin/sh -e -c SCRIPT`) in a session and process group of its own, passes
 * its output (stdout and stderr through one pipe, so their lines keep their
 * order) back to the agent, and reports how it ended. It exists because
 * starting a process from Node forks the whole Node process; posix_spawn from
 * this small program costs a fraction of that. step-launcher.mjs speaks the
 * same protocol in JavaScript, for hosts without a C compiler.
 *
 * Protocol (version in PROTOCOL below; `--protocol` prints it and exits).
 * Requests on stdin, each a run of NUL-terminated fields: an operation, a
 * step id, and the count of the fields that follow:
 *   spawn <id> <n> <cwd> <script> [NAME=value ...]
 *   kill <id> 1 <signal number>
 *   pause <id> 0       (stop reading the step's output: it waits on its pipe)
 *   resume <id> 0
 * Events on stdout, each a line, an output line followed by its bytes:
 *   started <id> <pid>
 *   output <id> <byte count>\n<bytes>
 *   exit <id> <exit code or -1> <signal number or 0>
 * A step that cannot start gets its reason as output and exits with 127.
 * When its shell ends, whatever the step left in its process group is
 * killed, the rest of its output is passed on, and then its exit reported.
 * When stdin ends (the agent is gone, even after kill -9), every running
 * step's group is killed and the launcher exits.
 *
 * Sandboxed (`--sandbox UID:GID [--expose FROM:TO ...]`, see sandbox.h), the
 * `cwd` of a spawn is the step's job directory rather than its working
 * directory, and each step runs in namespaces of its own.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox.h"

#define PROTOCOL "3"
#define MAX_STEPS 1024
#define MAX_FIELDS 65536

struct step {
  char id[32];
  pid_t pid;     /* also its process group */
  int out;       /* read end of its output pipe; -1 once drained */
  int status;    /* wait status, once reaped */
  int reaped;
  int paused;    /* its output is left unread until resumed */
  int *shell;    /* sandboxed: the shell's wait status, set by the step's init */
};

static struct step steps[MAX_STEPS];
static int step_count;

/* Signals a step: its process group, or a sandbox's init alone, which
 * passes the signal on to every process of the step once (its group would
 * give the shell a second copy), and with SIGKILL takes the whole sandbox
 * down, even before it has made its group. */
static void signal_step(const struct step *step, int signal_number) {
  if (step->shell) kill(step->pid, signal_number);
  else killpg(step->pid, signal_number);
}
static int child_pipe[2]; /* SIGCHLD wakes the poll loop through this */

static void die(const char *what) {
  perror(what);
  for (int i = 0; i < step_count; i++)
    if (!steps[i].reaped) signal_step(&steps[i], SIGKILL);
  exit(1);
}

static void write_all(const char *data, size_t length) {
  while (length > 0) {
    ssize_t n = write(STDOUT_FILENO, data, length);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("step-launcher: write");
    }
    data += n;
    length -= (size_t)n;
  }
}

/* Writes `format` as formatted, cut to fit a buffer of `size` if need be. */
static size_t formatted(char *buffer, size_t size, const char *format, va_list args) {
  int n = vsnprintf(buffer, size, format, args);
  if (n < 0) return 0;
  return (size_t)n < size ? (size_t)n : size - 1;
}

static void event(const char *format, ...) {
  char line[256];
  va_list args;
  va_start(args, format);
  size_t n = formatted(line, sizeof line, format, args);
  va_end(args);
  write_all(line, n);
}

static void explain(const char *id, const char *format, ...) {
  char why[1024];
  va_list args;
  va_start(args, format);
  size_t n = formatted(why, sizeof why, format, args);
  va_end(args);
  event("output %s %zu\n", id, n);
  write_all(why, n);
  event("exit %s 127 0\n", id);
}

static void output(const char *id, const char *data, size_t length) {
  event("output %s %zu\n", id, length);
  write_all(data, length);
}

static void on_child(int signal) {
  (void)signal;
  int saved = errno;
  (void)!write(child_pipe[1], "", 1);
  errno = saved;
}

static void add_step(const char *id, pid_t pid, int out, int *shell) {
  struct step *step = &steps[step_count++];
  snprintf(step->id, sizeof step->id, "%s", id);
  step->pid = pid;
  step->out = out;
  step->reaped = 0;
  step->paused = 0;
  step->shell = shell;
  event("started %s %d\n", step->id, (int)pid);
}

static void spawn_step(char **fields, int count) {
  if (count < 4) return;
  const char *id = fields[0], *cwd = fields[2], *script = fields[3];
  if (step_count == MAX_STEPS || strlen(id) >= sizeof steps[0].id) {
    explain(id, "the agent's step launcher cannot take this step: %s\n", step_count == MAX_STEPS ? "too many at once" : "its id is too long");
    return;
  }
  static char *env[MAX_FIELDS + 1];
  int envc = 0;
  for (int i = 4; i < count; i++) env[envc++] = fields[i];
  env[envc] = NULL;
  char *argv[] = {"/bin/sh", "-e", "-c", (char *)script, NULL};

  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) < 0) die("step-launcher: pipe");
  if (sandbox_enabled()) {
    int *shell = NULL;
    pid_t pid = sandbox_spawn(cwd, argv, env, pipe_fds[1], &shell);
    int failed = errno;
    close(pipe_fds[1]);
    if (pid < 0) {
      close(pipe_fds[0]);
      explain(id, "cannot start the step's sandbox: %s\n", strerror(failed));
      return;
    }
    add_step(id, pid, pipe_fds[0], shell);
    return;
  }
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attributes;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDERR_FILENO);
  posix_spawn_file_actions_addchdir_np(&actions, cwd);
  posix_spawnattr_init(&attributes);
  sigset_t defaults, none;
  sigfillset(&defaults);
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  pid_t pid;
  int failed = posix_spawn(&pid, "/bin/sh", &actions, &attributes, argv, env);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  close(pipe_fds[1]);
  if (failed) {
    close(pipe_fds[0]);
    explain(id, "cannot start /bin/sh in %s: %s\n", cwd, strerror(failed));
    return;
  }
  add_step(id, pid, pipe_fds[0], NULL);
}

static void kill_step(char **fields, int count) {
  if (count < 3) return;
  for (int i = 0; i < step_count; i++)
    if (strcmp(steps[i].id, fields[0]) == 0 && !steps[i].reaped) signal_step(&steps[i], atoi(fields[2]));
}

static void pause_step(char **fields, int count, int paused) {
  if (count < 2) return;
  for (int i = 0; i < step_count; i++)
    if (strcmp(steps[i].id, fields[0]) == 0) steps[i].paused = paused;
}

/* Reports and forgets a step whose shell is reaped and whose output is drained. */
static void finish_if_done(int index) {
  struct step *step = &steps[index];
  if (!step->reaped || step->out >= 0) return;
  int status = step->status;
  if (step->shell) {
    /* The init of a sandbox exits 0 after recording how its shell ended. */
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && step->shell[1]) status = step->shell[0];
    sandbox_release(step->shell);
  }
  if (WIFEXITED(status)) event("exit %s %d 0\n", step->id, WEXITSTATUS(status));
  else event("exit %s -1 %d\n", step->id, WTERMSIG(status));
  steps[index] = steps[--step_count];
}

/* Kills what each ended step left in its group, while its shell is still a
 * zombie and so its group id cannot be taken by another process, then reaps it. */
static void reap(void) {
  siginfo_t info;
  for (;;) {
    info.si_pid = 0;
    if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) < 0 || info.si_pid == 0) return;
    pid_t pid = info.si_pid;
    int status;
    struct step *step = NULL;
    for (int i = 0; i < step_count; i++)
      if (steps[i].pid == pid && !steps[i].reaped) step = &steps[i];
    if (step) killpg(pid, SIGKILL);
    if (waitpid(pid, &status, 0) < 0) continue;
    if (step) {
      step->reaped = 1;
      step->status = status;
    }
  }
}

/* Requests read so far and not yet handled. */
static char *input;
static size_t input_length, input_capacity;

/* Handles every complete request in the input and keeps the rest. */
static void handle_requests(void) {
  size_t start = 0;
  for (;;) {
    static char *fields[MAX_FIELDS + 3];
    int count = 0, wanted = 3;
    size_t at = start;
    while (count < wanted) {
      char *end = memchr(input + at, '\0', input_length - at);
      if (!end) break;
      fields[count++] = input + at;
      at = (size_t)(end - input) + 1;
      if (count == 3) {
        wanted = 3 + atoi(fields[2]);
        if (wanted > MAX_FIELDS + 3 || wanted < 3) die("step-launcher: malformed request");
      }
    }
    if (count < wanted) break;
    start = at;
    if (strcmp(fields[0], "spawn") == 0) spawn_step(fields + 1, count - 1);
    else if (strcmp(fields[0], "kill") == 0) kill_step(fields + 1, count - 1);
    else if (strcmp(fields[0], "pause") == 0) pause_step(fields + 1, count - 1, 1);
    else if (strcmp(fields[0], "resume") == 0) pause_step(fields + 1, count - 1, 0);
  }
  memmove(input, input + start, input_length - start);
  input_length -= start;
}

static int read_requests(void) {
  if (input_capacity - input_length < 65536) {
    input_capacity = input_capacity * 2 + 65536;
    input = realloc(input, input_capacity);
    if (!input) die("step-launcher: realloc");
  }
  ssize_t n = read(STDIN_FILENO, input + input_length, input_capacity - input_length);
  if (n < 0) return errno == EINTR || errno == EAGAIN;
  if (n == 0) return 0;
  input_length += (size_t)n;
  handle_requests();
  return 1;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--protocol") == 0) {
    puts(PROTOCOL);
    return 0;
  }
  const char *problem = sandbox_configure(argc, argv);
  if (problem) {
    fprintf(stderr, "step-launcher: %s\n", problem);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  /* It stops when the agent's input ends, not on signals meant for the agent. */
  signal(SIGTERM, SIG_IGN);
  signal(SIGINT, SIG_IGN);
  if (pipe2(child_pipe, O_CLOEXEC | O_NONBLOCK) < 0) die("step-launcher: pipe");
  struct sigaction child_action = {0};
  child_action.sa_handler = on_child;
  child_action.sa_flags = SA_RESTART | SA_NOCLDSTOP;
  sigaction(SIGCHLD, &child_action, NULL);

  static struct pollfd polled[MAX_STEPS + 2];
  static char buffer[65536];
  for (;;) {
    polled[0] = (struct pollfd){.fd = STDIN_FILENO, .events = POLLIN};
    polled[1] = (struct pollfd){.fd = child_pipe[0], .events = POLLIN};
    /* poll skips a negative fd: a paused or drained step's. */
    for (int i = 0; i < step_count; i++) polled[i + 2] = (struct pollfd){.fd = steps[i].paused ? -1 : steps[i].out, .events = POLLIN};
    int polled_steps = step_count;
    if (poll(polled, (nfds_t)polled_steps + 2, -1) < 0) {
      if (errno == EINTR) continue;
      die("step-launcher: poll");
    }
    if (polled[1].revents) {
      while (read(child_pipe[0], buffer, sizeof buffer) > 0) {}
      reap();
    }
    for (int i = 0; i < polled_steps; i++) {
      struct step *step = &steps[i];
      if (step->out < 0) continue;
      if (polled[i + 2].revents) {
        ssize_t n = read(step->out, buffer, sizeof buffer);
        if (n > 0) output(step->id, buffer, (size_t)n);
        else if (n == 0 || errno != EINTR) {
          close(step->out);
          step->out = -1;
        }
      }
    }
    /* Backwards, since a finished step's place is taken by the last one. */
    for (int i = step_count - 1; i >= 0; i--) finish_if_done(i);
    if (polled[0].revents && !read_requests()) {
      for (int i = 0; i < step_count; i++)
        if (!steps[i].reaped) signal_step(&steps[i], SIGKILL);
      return 0;
    }
  }
}
