// Signing in and out. The token is kept in localStorage so that every tab
// of the console is the same agent, and signing out in one signs out all.

const LOGIN_KEY = "switchboard.console.login";

export function savedLogin() {
  try {
    const login = JSON.parse(localStorage.getItem(LOGIN_KEY) || "null");
    return login && login.token && login.agent ? login : null;
  } catch {
    return null;
  }
}

export function forgetLogin() {
  localStorage.removeItem(LOGIN_KEY);
}

// Another tab signed in (login) or out (null).
export function watchLogin(callback) {
  window.addEventListener("storage", (event) => {
    if (event.key === LOGIN_KEY || event.key === null) callback(savedLogin());
  });
}

export function bindLoginForm(form, errorLine, onSignedIn) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    errorLine.textContent = "";
    const fields = new FormData(form);
    let response;
    try {
      response = await fetch("/api/login", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({
          login: fields.get("login"),
          password: fields.get("password"),
        }),
      });
    } catch {
      errorLine.textContent = "The server cannot be reached.";
      return;
    }
    if (!response.ok) {
      errorLine.textContent =
        response.status === 401 ? "Wrong login or password." : "Signing in failed.";
      return;
    }

    const login = await response.json();
    localStorage.setItem(LOGIN_KEY, JSON.stringify(login));
    form.reset();
    onSignedIn(login);
  });
}
