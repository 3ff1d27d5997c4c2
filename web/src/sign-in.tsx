import { useState } from "preact/hooks";
import { clientFor, messageOf } from "./session.ts";

// Paste an API token (`otto admin tokens create` or the admin token): it is
// tried with one harmless call before it is kept.
export function SignIn(props: { message: string; onSignedIn: (token: string) => void }) {
  const [message, setMessage] = useState(props.message);
  const [busy, setBusy] = useState(false);
  const submit = async (event: Event) => {
    event.preventDefault();
    const form = event.currentTarget as HTMLFormElement;
    const token = (new FormData(form).get("token") as string | null)?.trim() ?? "";
    if (token === "") return setMessage("paste an API token");
    setBusy(true);
    try {
      await clientFor(token).account.whoAmI({});
      props.onSignedIn(token);
    } catch (err) {
      setMessage(messageOf(err));
      setBusy(false);
    }
  };
  return (
    <main class="sign-in">
      <h1>Otto</h1>
      <form method="post" action="" onSubmit={submit} autocomplete="off">
        <label for="token">API token</label>
        <input id="token" name="token" type="password" autocomplete="off" spellcheck={false} placeholder="otto_api_…" />
        <button type="submit" disabled={busy}>
          Sign in
        </button>
        {message && (
          <p class="error" role="alert">
            {message}
          </p>
        )}
        <p class="hint">The token stays in this tab (session storage) and is sent only to this Otto, as a bearer header.</p>
      </form>
    </main>
  );
}
