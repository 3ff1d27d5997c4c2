/* Step sandboxes: see sandbox.h. */
#define _GNU_SOURCE
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_EXPOSED 64

static struct {
  int on;
  /* Not root: each step also gets a user namespace of its own, in which
   * UID:GID stand for the launcher's own user and group. */
  int rootless;
  uid_t outer_uid;
  gid_t outer_gid;
  uid_t uid;
  gid_t gid;
  int exposed;
  const char *from[MAX_EXPOSED], *to[MAX_EXPOSED];
  int writable[MAX_EXPOSED];
} config;

static const char *host_dirs[] = {"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc"};
static const char *device_nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};
static const int forwarded_signals[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

/* The launcher's command line, which its clones (each step's init) blank:
 * a step reading /proc/1/cmdline learns nothing of the host's paths. */
static char *command_line;
static size_t command_line_length;

const char *sandbox_configure(int argc, char **argv) {
  command_line = argv[0];
  command_line_length = (size_t)(argv[argc - 1] + strlen(argv[argc - 1]) - argv[0]);
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--sandbox") == 0 && i + 1 < argc) {
      unsigned long uid, gid;
      char end;
      if (sscanf(argv[++i], "%lu:%lu%c", &uid, &gid, &end) != 2) return "--sandbox takes UID:GID";
      config.on = 1;
      config.uid = (uid_t)uid;
      config.gid = (gid_t)gid;
    } else if ((strcmp(argv[i], "--expose") == 0 || strcmp(argv[i], "--share") == 0) && i + 1 < argc) {
      int writable = argv[i][2] == 's';
      char *pair = strdup(argv[++i]), *colon = pair ? strchr(pair, ':') : NULL;
      if (!colon || colon == pair || colon[1] != '/') return "--expose and --share take FROM:/TO";
      if (config.exposed == MAX_EXPOSED) return "too many --expose and --share";
      *colon = '\0';
      config.from[config.exposed] = pair;
      config.writable[config.exposed] = writable;
      config.to[config.exposed++] = colon + 1;
    } else {
      return "unknown argument (expected --sandbox UID:GID, --expose FROM:/TO, --share FROM:/TO)";
    }
  }
  if (config.exposed > 0 && !config.on) return "--expose and --share need --sandbox";
  config.outer_uid = geteuid();
  config.outer_gid = getegid();
  config.rootless = config.outer_uid != 0;
  return NULL;
}

int sandbox_enabled(void) { return config.on; }

/* What failed while building the sandbox, for the step's log. */
static const char *failure;

static int fail(const char *what) {
  failure = what;
  return -1;
}

static int path_in(char *buffer, const char *root, const char *path) {
  int n = snprintf(buffer, PATH_MAX, "%s/%s", root, path[0] == '/' ? path + 1 : path);
  return n > 0 && n < PATH_MAX ? 0 : fail("a path is too long");
}

/* The step's root while it is built: every mount point is made beneath it. */
static const char *sandbox_root;

/* Makes `path` (beneath sandbox_root) a directory or a file to mount on,
 * creating what is missing and following no symbolic link: some directories
 * on the way are the step's own (its workspace, home and tmp, when an
 * operator's share lies within them), and a link an earlier step of the job
 * left there must not lead this process, root on the host's file system,
 * anywhere else. Nothing of the step runs meanwhile, so what is checked here
 * is what the mount then finds. */
static int make_mount_point(const char *path, int directory) {
  size_t root_length = strlen(sandbox_root);
  if (strncmp(path, sandbox_root, root_length) != 0 || (path[root_length] != '/' && path[root_length] != '\0'))
    return fail("a mount point outside the step's root");
  char rest[PATH_MAX];
  snprintf(rest, sizeof rest, "%s", path + root_length);
  int dir = open(sandbox_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return fail("opening the step's root");
  char *save = NULL;
  for (char *part = strtok_r(rest, "/", &save); part;) {
    char *next = strtok_r(NULL, "/", &save);
    int fd;
    if (strcmp(part, ".") == 0 || strcmp(part, "..") == 0) {
      close(dir);
      errno = EINVAL;
      return fail("a mount point with . or ..");
    }
    if (next || directory) {
      if (mkdirat(dir, part, 0755) < 0 && errno != EEXIST) {
        close(dir);
        return fail("mkdir");
      }
      fd = openat(dir, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    } else {
      fd = openat(dir, part, O_RDONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
    }
    close(dir);
    if (fd < 0) return fail(errno == ELOOP || errno == ENOTDIR ? "a mount point through a symbolic link" : "creating a mount point");
    dir = fd;
    part = next;
  }
  close(dir);
  return 0;
}

/* An empty file or directory to mount `source` on. */
static int mount_point_for(const char *source, const char *target) {
  struct stat st;
  if (stat(source, &st) < 0) return fail(source);
  return make_mount_point(target, S_ISDIR(st.st_mode));
}

/* The flags a bind of `target` has now: a remount in a user namespace must
 * keep those its source locked (noexec, the atime ones). */
static unsigned long kept_flags(const char *target) {
  struct statvfs st;
  if (statvfs(target, &st) < 0) return 0;
  unsigned long kept = 0;
  if (st.f_flag & ST_NOEXEC) kept |= MS_NOEXEC;
  if (st.f_flag & ST_NOATIME) kept |= MS_NOATIME;
  if (st.f_flag & ST_NODIRATIME) kept |= MS_NODIRATIME;
  if (st.f_flag & ST_RELATIME) kept |= MS_RELATIME;
  if (st.f_flag & ST_RDONLY) kept |= MS_RDONLY;
  return kept;
}

static int bind(const char *source, const char *target, int read_only) {
  if (mount_point_for(source, target) < 0) return -1;
  if (mount(source, target, NULL, MS_BIND | MS_REC, NULL) < 0) return fail(source);
  unsigned long flags = MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | (read_only ? MS_RDONLY : 0) | kept_flags(target);
  if (mount(NULL, target, NULL, flags, NULL) < 0) return fail("remounting a bind");
  return 0;
}

static int mount_fs(const char *type, const char *target, unsigned long flags, const char *options) {
  if (make_mount_point(target, 1) < 0) return -1;
  if (mount(type, target, type, flags, options) < 0) return fail(target);
  return 0;
}

static int build_dev(const char *root) {
  char dev[PATH_MAX], path[PATH_MAX], host[PATH_MAX];
  if (path_in(dev, root, "dev") < 0 || mount_fs("tmpfs", dev, MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k") < 0) return -1;
  for (size_t i = 0; i < sizeof device_nodes / sizeof *device_nodes; i++) {
    snprintf(host, sizeof host, "/dev/%s", device_nodes[i]);
    if (access(host, F_OK) < 0) continue;
    if (path_in(path, dev, device_nodes[i]) < 0) return -1;
    if (mount_point_for(host, path) < 0 || mount(host, path, NULL, MS_BIND, NULL) < 0) return fail(host);
  }
  static const char *links[][2] = {
      {"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"},
      {"/proc/self/fd/2", "stderr"}, {"pts/ptmx", "ptmx"}};
  for (size_t i = 0; i < sizeof links / sizeof *links; i++) {
    if (path_in(path, dev, links[i][1]) < 0) return -1;
    if (symlink(links[i][0], path) < 0) return fail("a /dev link");
  }
  if (path_in(path, dev, "pts") < 0 || mount_fs("devpts", path, MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620") < 0) return -1;
  if (path_in(path, dev, "shm") < 0 || mount_fs("tmpfs", path, MS_NOSUID | MS_NODEV, "mode=1777") < 0) return -1;
  return 0;
}

/* Builds the step's root under <job>/.root and moves into it. */
static int build_root(const char *job_dir) {
  char root[PATH_MAX], path[PATH_MAX], source[PATH_MAX];
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) return fail("making the mounts private");
  if (path_in(root, job_dir, ".root") < 0) return -1;
  if (mkdir(root, 0700) < 0 && errno != EEXIST) return fail("mkdir .root");
  if (mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m") < 0) return fail("the root tmpfs");
  sandbox_root = root;
  for (size_t i = 0; i < sizeof host_dirs / sizeof *host_dirs; i++) {
    struct stat st;
    snprintf(source, sizeof source, "/%s", host_dirs[i]);
    if (lstat(source, &st) < 0) continue;
    if (path_in(path, root, host_dirs[i]) < 0) return -1;
    if (S_ISLNK(st.st_mode)) {
      char link[PATH_MAX];
      ssize_t n = readlink(source, link, sizeof link - 1);
      if (n < 0) return fail(source);
      link[n] = '\0';
      if (symlink(link, path) < 0) return fail("a root link");
    } else if (S_ISDIR(st.st_mode) && bind(source, path, 1) < 0) {
      return -1;
    }
  }
  static const char *writable[][2] = {{"workspace", "workspace"}, {"home", "home/otto"}, {"tmp", "tmp"}};
  for (size_t i = 0; i < sizeof writable / sizeof *writable; i++) {
    if (path_in(source, job_dir, writable[i][0]) < 0 || path_in(path, root, writable[i][1]) < 0) return -1;
    if (bind(source, path, 0) < 0) return -1;
  }
  for (int i = 0; i < config.exposed; i++) {
    if (path_in(path, root, config.to[i]) < 0 || bind(config.from[i], path, !config.writable[i]) < 0) return -1;
  }
  if (path_in(path, root, "proc") < 0 || mount_fs("proc", path, MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) return -1;
  if (path_in(path, root, "sys") < 0) return -1;
  if (mount_fs("sysfs", path, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0 && bind("/sys", path, 1) < 0) return -1;
  if (build_dev(root) < 0) return -1;
  if (chdir(root) < 0 || mkdir(".old", 0700) < 0) return fail("preparing pivot_root");
  if (syscall(SYS_pivot_root, ".", ".old") < 0) return fail("pivot_root");
  if (chdir("/") < 0 || umount2("/.old", MNT_DETACH) < 0 || rmdir("/.old") < 0) return fail("leaving the host's root");
  if (mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0) return fail("making the root read-only");
  return 0;
}

static void forward(int signal) { kill(-1, signal); }

struct init_args {
  const char *job_dir;
  char **argv, **env;
  int out;
  int *shell;
};

struct shell_args {
  char **argv, **env;
  sigset_t *mask;
};

/* The step's shell, started by its init with CLONE_VM | CLONE_VFORK (no
 * copy of the init's memory, which a fork would make for each step): raw
 * system calls only until execve. */
static int become_step_user(void *p) {
  struct shell_args *args = p;
  for (size_t i = 0; i < sizeof forwarded_signals / sizeof *forwarded_signals; i++) signal(forwarded_signals[i], SIG_DFL);
  sigprocmask(SIG_SETMASK, args->mask, NULL);
  /* Without root, the user namespace denies setgroups and has no other group to drop. */
  if ((!config.rootless && syscall(SYS_setgroups, 0, NULL) < 0) || syscall(SYS_setresgid, config.gid, config.gid, config.gid) < 0 ||
      syscall(SYS_setresuid, config.uid, config.uid, config.uid) < 0) {
    dprintf(STDERR_FILENO, "cannot become the step's user %lu:%lu: %s\n", (unsigned long)config.uid, (unsigned long)config.gid, strerror(errno));
    _exit(127);
  }
  prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  if (chdir("/workspace") < 0) {
    dprintf(STDERR_FILENO, "cannot enter /workspace: %s\n", strerror(errno));
    _exit(127);
  }
  execve(args->argv[0], args->argv, args->env);
  dprintf(STDERR_FILENO, "cannot start %s: %s\n", args->argv[0], strerror(errno));
  _exit(127);
}

static int write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return fail(path);
  ssize_t n = write(fd, text, strlen(text));
  close(fd);
  return n == (ssize_t)strlen(text) ? 0 : fail(path);
}

/* In its new user namespace, the init maps the steps' UID:GID to the
 * launcher's own user and group, the only ones it may map without help; it
 * keeps the capabilities it has there until the shell's execve. */
static int map_step_user(void) {
  char map[64];
  if (write_file("/proc/self/setgroups", "deny") < 0) return -1;
  snprintf(map, sizeof map, "%lu %lu 1\n", (unsigned long)config.uid, (unsigned long)config.outer_uid);
  if (write_file("/proc/self/uid_map", map) < 0) return -1;
  snprintf(map, sizeof map, "%lu %lu 1\n", (unsigned long)config.gid, (unsigned long)config.outer_gid);
  return write_file("/proc/self/gid_map", map);
}

/* PID 1 of the step's namespace. */
static int step_init(void *p) {
  struct init_args *args = p;
  memset(command_line, 0, command_line_length);
  snprintf(command_line, command_line_length + 1, "otto-step-init");
  prctl(PR_SET_NAME, "otto-step-init", 0, 0, 0);
  sigset_t none;
  sigemptyset(&none);
  for (int signal_number = 1; signal_number < NSIG; signal_number++) signal(signal_number, SIG_DFL);
  sigprocmask(SIG_SETMASK, &none, NULL);
  setsid();
  int null = open("/dev/null", O_RDONLY);
  if (null < 0 || dup2(null, STDIN_FILENO) < 0 || dup2(args->out, STDOUT_FILENO) < 0 || dup2(args->out, STDERR_FILENO) < 0) _exit(127);
  syscall(SYS_close_range, 3U, ~0U, 0U);
  if ((config.rootless && map_step_user() < 0) || build_root(args->job_dir) < 0) {
    dprintf(STDERR_FILENO, "cannot sandbox the step: %s: %s\n", failure, strerror(errno));
    _exit(127);
  }
  struct sigaction forwarding = {0};
  forwarding.sa_handler = forward;
  for (size_t i = 0; i < sizeof forwarded_signals / sizeof *forwarded_signals; i++) sigaction(forwarded_signals[i], &forwarding, NULL);
  /* Signals wait while the shell is made, so that none runs a forwarding
   * handler in it before it has its own. */
  sigset_t all;
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, NULL);
  static char shell_stack[64 * 1024] __attribute__((aligned(16)));
  struct shell_args shell_args = {args->argv, args->env, &none};
  pid_t shell = clone(become_step_user, shell_stack + sizeof shell_stack, CLONE_VM | CLONE_VFORK | SIGCHLD, &shell_args);
  sigprocmask(SIG_SETMASK, &none, NULL);
  if (shell < 0) {
    dprintf(STDERR_FILENO, "cannot start the step's shell: %s\n", strerror(errno));
    _exit(127);
  }
  for (;;) {
    int status;
    pid_t ended = waitpid(-1, &status, 0);
    if (ended == shell) {
      args->shell[0] = status;
      args->shell[1] = 1;
      _exit(0);
    }
    if (ended < 0 && errno == ECHILD) _exit(127);
  }
}

pid_t sandbox_spawn(const char *job_dir, char **argv, char **env, int out, int **shell) {
  static char stack[256 * 1024] __attribute__((aligned(16)));
  int *status = mmap(NULL, 2 * sizeof(int), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (status == MAP_FAILED) return -1;
  status[0] = status[1] = 0;
  struct init_args args = {job_dir, argv, env, out, status};
  int flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | SIGCHLD | (config.rootless ? CLONE_NEWUSER : 0);
  pid_t pid = clone(step_init, stack + sizeof stack, flags, &args);
  if (pid < 0) {
    int saved = errno;
    munmap(status, 2 * sizeof(int));
    errno = saved;
    return -1;
  }
  *shell = status;
  return pid;
}

void sandbox_release(int *shell) { munmap(shell, 2 * sizeof(int)); }
