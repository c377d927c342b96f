// The agent console: sign in, then the workspace; sign out everywhere.

import { bindLoginForm, forgetLogin, savedLogin, watchLogin } from "./auth.js";
import { byId } from "./page.js";
import { Workspace } from "./workspace.js";

let workspace = null;

function showLogin() {
  byId("login").hidden = false;
  byId("workspace").hidden = true;
  byId("me").hidden = true;
  byId("login-name").focus();
}

function start(login) {
  if (workspace) return;
  byId("login").hidden = true;
  byId("workspace").hidden = false;
  byId("me").hidden = false;
  byId("me-name").textContent = login.agent.name;
  workspace = new Workspace(login, { onSignedOut: signOut });
  workspace.start();
}

// Signing out reloads the page: nothing of the old session survives, in
// this tab or (through the storage event) in the others.
function signOut() {
  forgetLogin();
  location.reload();
}

bindLoginForm(byId("login-form"), byId("login-error"), start);
byId("logout").addEventListener("click", signOut);
watchLogin((login) => {
  if (login && !workspace) start(login);
  else if (!login && workspace) location.reload();
});

const saved = savedLogin();
if (saved) start(saved);
else showLogin();
