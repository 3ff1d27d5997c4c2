// The environment the coordinator runs git in. It is built, not inherited:
// a GIT_DIR, GIT_TRACE or config in the coordinator's own environment or in
// a user's ~/.gitconfig must not change what git does here, and git must
// never wait on a prompt.

// http is left out: the auth header (a forge token) would cross the network
// in clear. "file" is for repositories on the coordinator's host (and tests).
export const allowedProtocols = "https:ssh:file";

// What an operator may need git to see: an ssh agent, proxies, a private CA.
const passedThrough = [
  "PATH",
  "TMPDIR",
  "SSH_AUTH_SOCK",
  "GIT_SSH_COMMAND",
  "https_proxy",
  "HTTPS_PROXY",
  "all_proxy",
  "ALL_PROXY",
  "no_proxy",
  "NO_PROXY",
  "GIT_SSL_CAINFO",
  "GIT_SSL_CAPATH",
  "SSL_CERT_FILE",
  "SSL_CERT_DIR",
];

export function gitEnvironment(home: string, config: ReadonlyArray<readonly [string, string]>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of passedThrough) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  Object.assign(env, {
    HOME: home,
    LC_ALL: "C",
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_CONFIG_GLOBAL: "/dev/null",
    GIT_TERMINAL_PROMPT: "0",
    // Set but empty: git then asks no askpass program (not even core.askPass).
    GIT_ASKPASS: "",
    GIT_ALLOW_PROTOCOL: allowedProtocols,
  });
  // ssh asks for host keys and passphrases on /dev/tty, not through git.
  env.GIT_SSH_COMMAND ??= "ssh -o BatchMode=yes";
  // Configuration through the environment rather than -c: a value here (an
  // auth header) is not in the command line every local user can read.
  env.GIT_CONFIG_COUNT = String(config.length);
  config.forEach(([key, value], index) => {
    env[`GIT_CONFIG_KEY_${index}`] = key;
    env[`GIT_CONFIG_VALUE_${index}`] = value;
  });
  return env;
}
