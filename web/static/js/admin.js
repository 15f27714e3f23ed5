// The admin page: departments and staff accounts, through the REST API (/api/v1/departments,
// /api/v1/accounts) with the session cookie and the page's CSRF token. A new account's one-time
// password is shown once and never stored by the page.

import { initI18n, t } from "./i18n.js";
import { request } from "./staffapi.js";
import { el } from "./dom.js";

const $ = (id) => document.getElementById(id);
let departments = [];

function say(id, text, kind = "") {
  const node = $(id);
  node.textContent = text;
  node.className = `message${kind ? " message-" + kind : ""}`;
}

const ERRORS = {
  network: "admin.error.network",
  unauthenticated: "admin.error.session",
  session_expired: "admin.error.session",
  csrf_failed: "admin.error.session",
  forbidden: "admin.error.forbidden",
  department_exists: "admin.error.department_exists",
  username_taken: "admin.error.username_taken",
  department_required: "admin.error.department_required",
  unknown_department: "admin.error.unknown_department",
  languages_for_interpreters: "admin.error.languages_for_interpreters",
  cannot_disable_self: "admin.error.cannot_disable_self",
  invalid_request: "admin.error.invalid",
};

function errorText(err) {
  return t(ERRORS[err && err.code] || "admin.error.generic");
}

function deptName(id) {
  const dept = departments.find((d) => d.id === id);
  return dept ? dept.name : id || "–";
}

async function loadDepartments() {
  try {
    departments = (await request("GET", "/api/v1/departments")).departments;
  } catch (err) {
    say("depts-status", errorText(err), "error");
    return;
  }
  say("depts-status", departments.length ? "" : t("admin.empty"));
  $("depts-body").replaceChildren(...departments.map((d) => el("tr", {},
    el("td", {}, el("code", { text: d.id })), el("th", { scope: "row", text: d.name }),
    el("td", { text: t(`admin.kind.${d.kind}`) }))));
  const select = $("account-dept");
  const chosen = select.value;
  select.replaceChildren(el("option", { value: "", text: t("admin.account.no_department") }),
    ...departments.map((d) => el("option", { value: d.id, text: d.name, selected: d.id === chosen })));
}

async function loadAccounts() {
  let accounts;
  try {
    accounts = (await request("GET", "/api/v1/accounts")).accounts;
  } catch (err) {
    say("accounts-status", errorText(err), "error");
    return;
  }
  say("accounts-status", accounts.length ? "" : t("admin.empty"));
  $("accounts-body").replaceChildren(...accounts.map((a) => {
    const toggle = el("button", { type: "button", class: a.disabled ? "" : "button-danger",
      text: a.disabled ? t("admin.account.enable") : t("admin.account.disable"),
      "aria-label": t(a.disabled ? "admin.account.enable_named" : "admin.account.disable_named",
        { name: a.display_name }) });
    toggle.addEventListener("click", () => setDisabled(a, !a.disabled, toggle));
    return el("tr", {},
      el("td", {}, el("code", { text: a.username })),
      el("th", { scope: "row", text: a.display_name }),
      el("td", { text: t(`admin.role.${a.role}`) }),
      el("td", { text: a.department ? deptName(a.department) : "–" }),
      el("td", { text: a.languages.length ? a.languages.map(langName).join(", ") : "–" }),
      el("td", { text: a.disabled ? t("admin.state.disabled") : t("admin.state.active") }),
      el("td", {}, toggle));
  }));
}

function langName(code) {
  const key = `admin.lang.${code}`;
  const text = t(key);
  return text === key ? code : text;
}

async function setDisabled(account, disabled, button) {
  button.disabled = true;
  try {
    await request("PATCH", `/api/v1/accounts/${encodeURIComponent(account.id)}`, { body: { disabled } });
    await loadAccounts();  // first: reloading the list resets the status line
    say("accounts-status", t(disabled ? "admin.account.disabled_done" : "admin.account.enabled_done",
      { name: account.display_name }), "ok");
  } catch (err) {
    say("accounts-status", errorText(err), "error");
    button.disabled = false;
  }
}

async function addDepartment(event) {
  event.preventDefault();
  const form = event.target;
  const body = { id: $("dept-id").value.trim(), name: $("dept-name").value.trim(), kind: $("dept-kind").value };
  if (!body.id || !body.name) {
    say("dept-form-status", t("admin.error.required"), "error");
    return;
  }
  try {
    await request("POST", "/api/v1/departments", { body });
  } catch (err) {
    say("dept-form-status", errorText(err), "error");
    return;
  }
  form.reset();
  say("dept-form-status", t("admin.dept.done", { name: body.name }), "ok");
  await loadDepartments();
}

function chosenLanguages(form) {
  const codes = [...form.querySelectorAll('input[name="languages"]:checked')].map((box) => box.value);
  for (const code of $("account-more-languages").value.split(/[\s,;]+/)) {
    const clean = code.trim().toLowerCase();
    if (clean && !codes.includes(clean)) codes.push(clean);
  }
  return codes;
}

function showLanguages() {
  const interpreter = $("account-role").value === "interpreter";
  $("account-languages").hidden = !interpreter;
}

async function addAccount(event) {
  event.preventDefault();
  const form = event.target;
  const body = { username: $("account-username").value.trim(), display_name: $("account-display").value.trim(),
    role: $("account-role").value };
  if ($("account-dept").value) body.department = $("account-dept").value;
  if (body.role === "interpreter") body.languages = chosenLanguages(form);
  if (!body.username || !body.display_name) {
    say("account-form-status", t("admin.error.required"), "error");
    return;
  }
  let created;
  try {
    created = await request("POST", "/api/v1/accounts", { body });
  } catch (err) {
    say("account-form-status", errorText(err), "error");
    return;
  }
  form.reset();
  showLanguages();
  say("account-form-status", t("admin.account.done", { name: created.account.display_name }), "ok");
  $("account-password-value").textContent = created.password;
  $("account-password").hidden = false;
  await loadAccounts();
}

async function main() {
  await initI18n();
  $("dept-form").addEventListener("submit", addDepartment);
  $("account-form").addEventListener("submit", addAccount);
  $("account-role").addEventListener("change", showLanguages);
  showLanguages();
  await loadDepartments();
  await loadAccounts();
  document.body.dataset.ready = "true";
}

main();
