/*
 * Step sandboxes for the native step launcher. With `--sandbox UID:GID`
 * every step runs:
 *   - in PID, mount and IPC namespaces of its own, under a small init (its
 *     PID 1) that passes termination signals on to the step's processes and
 *     records how the shell ended; when the shell ends, the init exits and
 *     the kernel kills whatever the step left behind;
 *   - on a root of its own: read-only binds of the host's /usr, /bin, /sbin,
 *     /lib* and /etc, a fresh /proc (its own processes only), a read-only
 *     /sys, a minimal /dev, and from the job directory `workspace/` on
 *     /workspace, `home/` on /home/otto and `tmp/` on /tmp, the only
 *     writable places; every `--expose FROM:TO` is bound read-only at TO,
 *     every `--share FROM:TO` (an operator's choice) read-write; nothing
 *     else of the host's file system exists there;
 *   - as UID:GID with no supplementary groups and no_new_privs, so no
 *     set-user-id program gives it root back. A launcher that is not root
 *     also gives each step a user namespace, in which UID:GID stand for the
 *     launcher's own user and group.
 * The network is the host's.
 */
#ifndef STEP_SANDBOX_H
#define STEP_SANDBOX_H
#include <sys/types.h>

/* Reads the launcher's arguments (argv[0] included); a message when they are wrong, else NULL. */
const char *sandbox_configure(int argc, char **argv);
int sandbox_enabled(void);
/* Starts `argv` in a new sandbox on `job_dir` with its output on `out`; the
 * init's pid, or -1 with errno. `*shell` is where the init records the
 * shell's wait status ([0]) and that it did ([1]); sandbox_release frees it. */
pid_t sandbox_spawn(const char *job_dir, char **argv, char **env, int out, int **shell);
void sandbox_release(int *shell);
#endif
