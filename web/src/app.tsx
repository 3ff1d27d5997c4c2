import { useMemo, useState } from "preact/hooks";
import { LogPage } from "./log-page.tsx";
import { Link } from "./link.tsx";
import { useRoute } from "./route.ts";
import { RunPage } from "./run-page.tsx";
import { RunsPage } from "./runs-page.tsx";
import { clientFor, forgetToken, isUnauthenticated, messageOf, storedToken, storeToken } from "./session.ts";
import { SessionContext, type Session } from "./session-context.ts";
import { SignIn } from "./sign-in.tsx";

export function App() {
  const [token, setToken] = useState(storedToken);
  const [notice, setNotice] = useState("");
  const route = useRoute();
  const session = useMemo<Session | undefined>(() => {
    if (!token) return undefined;
    return {
      client: clientFor(token),
      fail(err) {
        const message = messageOf(err);
        // A token revoked or expired while signed in: back to the form, with Otto's word.
        if (isUnauthenticated(err)) signOut(message);
        return message;
      },
    };
  }, [token]);
  function signOut(message = "") {
    forgetToken();
    setToken(undefined);
    setNotice(message);
  }
  if (!session) {
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
  return (
    <SessionContext.Provider value={session}>
      <nav class="top">
        <Link href="/" class="brand">
          Otto
        </Link>
        <button type="button" class="sign-out" onClick={() => signOut()}>
          Sign out
        </button>
      </nav>
      {route.page === "runs" && <RunsPage state={route.state} />}
      {route.page === "run" && <RunPage key={route.runId} runId={route.runId} />}
      {route.page === "log" && <LogPage key={`${route.runId}/${route.job}/${route.attempt}`} runId={route.runId} job={route.job} attempt={route.attempt} line={route.line} />}
      {route.page === "missing" && (
        <main>
          <p class="error">Nothing here: {route.path}</p>
        </main>
      )}
    </SessionContext.Provider>
  );
}
