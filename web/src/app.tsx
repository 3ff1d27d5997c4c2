import { useEffect, useMemo, useState } from "preact/hooks";
import { grants } from "@otto/contracts/scopes";
import { AgentsPage } from "./agents-page.tsx";
import { LogPage } from "./log-page.tsx";
import { Link } from "./link.tsx";
import { ProjectsPage } from "./projects-page.tsx";
import { useRoute } from "./route.ts";
import { RunPage } from "./run-page.tsx";
import { RunsPage } from "./runs-page.tsx";
import { clientFor, forgetToken, isUnauthenticated, messageOf, storedToken, storeToken } from "./session.ts";
import { SessionContext, type Session } from "./session-context.ts";
import { SignIn } from "./sign-in.tsx";

export function App() {
  const [token, setToken] = useState(storedToken);
  // The token's scopes, as WhoAmI answered (asked again on every load).
  const [held, setHeld] = useState<readonly string[] | undefined>(undefined);
  const [notice, setNotice] = useState("");
  const route = useRoute();
  // Why WhoAmI could not be asked (Otto unreachable, say): the token is kept.
  const [unasked, setUnasked] = useState("");
  const [asking, setAsking] = useState(0);
  const client = useMemo(() => (token ? clientFor(token) : undefined), [token]);
  useEffect(() => {
    if (!client) return;
    let alive = true;
    setHeld(undefined);
    setUnasked("");
    client.account.whoAmI({}).then(
      (answer) => alive && setHeld(answer.token?.scopes ?? []),
      (err) => {
        if (!alive) return;
        if (isUnauthenticated(err)) signOut(messageOf(err));
        else setUnasked(messageOf(err));
      },
    );
    return () => void (alive = false);
  }, [client, asking]);
  const session = useMemo<Session | undefined>(() => {
    if (!client || !held) return undefined;
    return {
      client,
      may: (scope) => grants(held, scope),
      fail(err) {
        const message = messageOf(err);
        // A token revoked or expired while signed in: back to the form, with Otto's word.
        if (isUnauthenticated(err)) signOut(message);
        return message;
      },
    };
  }, [client, held]);
  function signOut(message = "") {
    forgetToken();
    setToken(undefined);
    setHeld(undefined);
    setNotice(message);
  }
  if (!token) {
    return (
      <SignIn
        key={notice}
        message={notice}
        onSignedIn={(accepted) => {
          storeToken(accepted);
          setNotice("");
          setToken(accepted);
        }}
      />
    );
  }
  if (!session) {
    if (!unasked) return <p class="loading">Loading…</p>;
    return (
      <main>
        <p class="error" role="alert">
          {unasked}
        </p>
        <button type="button" class="try-again" onClick={() => setAsking((n) => n + 1)}>
          Try again
        </button>
      </main>
    );
  }
  return (
    <SessionContext.Provider value={session}>
      <nav class="top">
        <span class="pages">
          <Link href="/" class="brand">
            Otto
          </Link>
          {session.may("runs:read") && (
            <>
              <Link href="/" class={route.page === "runs" ? "current" : undefined}>
                Runs
              </Link>
              <Link href="/projects" class={route.page === "projects" ? "current" : undefined}>
                Projects
              </Link>
            </>
          )}
          {session.may("agents:read") && (
            <Link href="/agents" class={route.page === "agents" ? "current" : undefined}>
              Agents
            </Link>
          )}
        </span>
        <button type="button" class="sign-out" onClick={() => signOut()}>
          Sign out
        </button>
      </nav>
      {route.page === "runs" &&
        (session.may("runs:read") ? (
          <RunsPage state={route.state} pipeline={route.pipeline} />
        ) : (
          <main>
            <p class="notice">This token may not read runs (that takes the runs:read scope).</p>
          </main>
        ))}
      {route.page === "run" && <RunPage key={route.runId} runId={route.runId} />}
      {route.page === "log" && <LogPage key={`${route.runId}/${route.job}/${route.attempt}`} runId={route.runId} job={route.job} attempt={route.attempt} line={route.line} />}
      {route.page === "agents" && <AgentsPage />}
      {route.page === "projects" && <ProjectsPage />}
      {route.page === "missing" && (
        <main>
          <p class="error">Nothing here: {route.path}</p>
        </main>
      )}
    </SessionContext.Provider>
  );
}
