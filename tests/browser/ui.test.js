// The web UI in Debian's Chromium, driven by Playwright: sign in, find a service, see
// what depends on it and who would be affected.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const bin = process.env.MUSTER_BIN ?? new URL("../../target/debug/muster", import.meta.url).pathname;
const executablePath = process.env.MUSTER_CHROMIUM ?? "/usr/bin/chromium";
const results = new URL("./test-results/", import.meta.url).pathname;
mkdirSync(results, { recursive: true });

let server, base, password, browser;

/** Starts `muster serve --demo` on a fresh SQLite file and reads its URL and password. */
function startMuster() {
  const dir = mkdtempSync(join(tmpdir(), "muster-ui-"));
  const child = spawn(bin, ["serve", "--demo", "--listen", "127.0.0.1:0", "--database-url", `sqlite://${join(dir, "muster.db")}`, "--secret-key-file", join(dir, "muster.key")], {
    env: { ...process.env, MUSTER_LOG: "warn" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  return new Promise((resolve, reject) => {
    let seen = "";
    const timer = setTimeout(() => reject(new Error(`muster did not start:\n${seen}`)), 60_000);
    child.stderr.on("data", (chunk) => {
      seen += chunk;
      const url = seen.match(/muster listening on (http:\/\/\S+)/);
      const pw = seen.match(/with password `([^`]+)`/);
      if (url && pw) {
        clearTimeout(timer);
        resolve({ child, url: url[1], pw: pw[1] });
      }
    });
    child.on("exit", (code) => reject(new Error(`muster exited with ${code}:\n${seen}`)));
  });
}

before(async () => {
  const started = await startMuster();
  server = started.child;
  base = started.url;
  password = started.pw;
  browser = await chromium.launch({
    executablePath,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
});

after(async () => {
  await browser?.close();
  server?.kill("SIGTERM");
});

async function signIn(page, pw = password) {
  await page.goto(`${base}/services`);
  assert.match(page.url(), /\/sign-in\?next=/, "pages need a session");
  await page.getByLabel("Username").fill("demo");
  await page.getByLabel("Password").fill(pw);
  await page.getByRole("button", { name: "Sign in" }).click();
}

test("a wrong password is refused with a clear message", async () => {
  const page = await browser.newPage();
  await signIn(page, "not-the-password");
  await page.getByRole("alert").waitFor();
  assert.equal(await page.getByRole("alert").textContent(), "Wrong username or password.");
  await page.close();
});

test("sign in, find a service, see its dependents and who it affects", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await signIn(page);
  // Back where we were going, signed in.
  await page.getByRole("heading", { name: "Services" }).waitFor();
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === "muster_session");
  assert.ok(session?.httpOnly, "the session cookie is HttpOnly");
  assert.equal(session.sameSite, "Lax");

  await page.getByRole("searchbox", { name: "Search" }).fill("identity");
  await page.getByRole("button", { name: "Filter" }).click();
  await page.getByRole("link", { name: "Identity and login" }).click();
  await page.getByRole("heading", { name: /Identity and login/ }).waitFor();

  const dependents = await page.locator("#dependents-list li").allTextContents();
  assert.deepEqual(dependents, ["forms-printing", "ges", "helpdesk-portal", "public-api"]);
  const graphNodes = await page.locator("svg.graph text:not(.column)").allTextContents();
  for (const name of ["Identity and login", "Forms printing", "AuthCo authentication (…", "Reservation agent portal"]) {
    assert.ok(graphNodes.includes(name), `graph shows ${name}: ${graphNodes}`);
  }
  const affected = await page.locator("#affected-organisations tbody tr td:first-child").allTextContents();
  assert.ok(affected.includes("Aldham Council") && affected.includes("Sunway Reservations"), affected.join(", "));
  await page.screenshot({ path: join(results, "service-identity.png"), fullPage: true });

  // Filter by team from the list.
  await page.getByRole("link", { name: "Services", exact: true }).click();
  await page.getByLabel("Team").selectOption("platform");
  await page.getByRole("button", { name: "Filter" }).click();
  const rows = await page.locator("table tbody tr td:first-child a").allTextContents();
  assert.deepEqual(rows, ["Identity and login", "Public API (api.example.test)", "AuthCo authentication (third-party vendor)"]);

  // The audit log links the entity.
  await page.getByRole("link", { name: "Audit" }).click();
  await page.getByRole("heading", { name: "Audit log" }).waitFor();
  assert.ok((await page.locator("table tbody tr").count()) > 10);

  // Signing out ends the session.
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.goto(`${base}/teams`);
  assert.match(page.url(), /\/sign-in/);
  await context.close();
});

test("see who is on call, a schedule's timeline, and send a test from a person's page", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await signIn(page);
  await page.getByRole("link", { name: "On call" }).click();
  await page.getByRole("heading", { name: "On call", exact: true }).waitFor();
  await page.getByRole("link", { name: "print-platform-primary" }).click();
  await page.getByRole("heading", { name: /print-platform-primary/ }).waitFor();
  const rows = await page.locator("svg.timeline text.row").allTextContents();
  assert.deepEqual(rows, ["Layer: weekly", "Overrides", "Final"]);
  const bars = await page.locator("svg.timeline g rect").count();
  assert.ok(bars >= 4, `the timeline has shifts: ${bars}`);
  const box = await page.locator("svg.timeline").boundingBox();
  assert.ok(box.width > 600 && box.height > 60, `the timeline is drawn: ${JSON.stringify(box)}`);
  await page.screenshot({ path: join(results, "schedule-print-platform.png"), fullPage: true });

  // From the final shifts to the person, then a test message to each contact method.
  await page.locator("table tbody tr td a").first().click();
  await page.getByRole("heading", { name: "On call in the next 14 days" }).waitFor();
  await page.getByRole("button", { name: "Send a test to each contact method" }).click();
  await page.getByRole("status").waitFor();
  assert.match(await page.getByRole("status").textContent(), /Queued 1 test message/);
  const log = await page.locator("table.notifications tbody tr").first().textContent();
  assert.match(log, /Muster test notification/);
  await page.screenshot({ path: join(results, "person-after-test.png"), fullPage: true });
  await context.close();
});

test("make an integration key, see its alert, silence it and lift the silence", async () => {
  const page = await browser.newPage();
  await signIn(page);
  await page.goto(`${base}/services/forms-printing/intake`);
  await page.getByLabel("Name").fill("prometheus-eu");
  await page.getByRole("button", { name: "Make a key" }).click();
  const key = (await page.locator("#new-key-value").textContent()).trim();
  assert.match(key, /^[a-z0-9]{32}$/, "the new key is shown once");
  await page.goto(`${base}/services/forms-printing/intake`);
  assert.equal(await page.locator("#new-key-value").count(), 0, "and only once");
  assert.match(await page.locator("table.keys").textContent(), /prometheus-eu.*live/s);

  const posted = await fetch(`${base}/api/v2/alerts`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify([{ labels: { alertname: "DiskFull", instance: "print-1" }, annotations: { summary: "disk 95% full" } }]),
  });
  assert.equal(posted.status, 200);

  await page.goto(`${base}/alerts?service=forms-printing`);
  const row = page.locator("tr", { hasText: "DiskFull" });
  await row.waitFor();
  assert.match(await row.textContent(), /firing.*disk 95% full.*instance=print-1/s);

  await page.goto(`${base}/silences`);
  await page.getByLabel("Matchers").fill('alertname="DiskFull"');
  await page.getByLabel("Comment").fill("replacing the disk");
  await page.getByRole("button", { name: "Silence" }).click();
  await page.locator("tr", { hasText: "replacing the disk" }).waitFor();
  await page.goto(`${base}/alerts?service=forms-printing`);
  assert.match(await page.locator("tr", { hasText: "DiskFull" }).textContent(), /silenced/);
  await page.screenshot({ path: join(results, "alerts.png"), fullPage: true });

  await page.goto(`${base}/silences`);
  await page.getByLabel("Matchers").fill("=oops");
  await page.getByLabel("Comment").fill("x");
  await page.getByRole("button", { name: "Silence" }).click();
  assert.match(await page.getByRole("alert").textContent(), /Matchers: bad matcher format/);
  await page.locator("tr", { hasText: "replacing the disk" }).getByRole("button", { name: "Expire" }).click();
  assert.match(await page.locator("tr", { hasText: "replacing the disk" }).textContent(), /expired/);
  await page.goto(`${base}/alerts?service=forms-printing`);
  assert.match(await page.locator("tr", { hasText: "DiskFull" }).textContent(), /firing/);
  await page.close();
});

test("the helpdesk records reports until the flood opens an incident; the list shows it live; it is acknowledged", async () => {
  const list = await browser.newPage();
  await signIn(list);
  await list.goto(`${base}/incidents`);
  const form = await browser.newPage();
  await signIn(form);
  const report = async (organisation, channel) => {
    await form.goto(`${base}/reports#new`);
    await form.getByLabel("Organisation").selectOption(organisation);
    await form.locator("form.stacked select[name=service]").selectOption("helpdesk-portal");
    await form.getByLabel("Summary").fill("Tickets vanish after saving");
    await form.getByLabel("Channel").selectOption(channel);
    await form.getByRole("button", { name: "Record" }).click();
  };
  for (const [organisation, channel] of [["org-01", "phone"], ["org-02", "social"], ["org-01", "email"], ["org-03", "phone"]]) {
    await report(organisation, channel);
    assert.match(form.url(), /\/reports$/, "below the flood rule the report waits in triage");
  }
  await report("org-10", "portal");
  assert.match(form.url(), /\/incidents\/INC-\d+$/, "the fifth report opened an incident");
  const number = form.url().match(/INC-\d+/)[0];
  assert.match(await form.locator(".counts").textContent(), /4\s+organisations reported/);
  assert.match(await form.locator(".timeline").textContent(), /Flood rule/);

  // The list, opened before, shows the new incident without a reload.
  await list.locator(`tr[data-incident="${number}"]`).waitFor({ timeout: 15_000 });
  assert.match(await list.locator(`tr[data-incident="${number}"]`).textContent(), /triggered.*5 reports from 4 organisations/s);

  await form.getByLabel("Reason or note").fill("looking into the ticket store");
  await form.getByRole("button", { name: "Acknowledge" }).click();
  assert.match(await form.locator("h1 + p, p:has(.status)").first().textContent(), /acknowledged/);
  assert.equal(await form.getByRole("button", { name: "Acknowledge" }).count(), 0, "acknowledging twice is not offered");
  await form.screenshot({ path: join(results, "incident.png"), fullPage: true });

  // The fix ships as a change linked to the incident: the incident page starts it, and
  // each page links the other.
  await form.getByRole("link", { name: "Ship a fix as a change" }).click();
  assert.equal(await form.getByLabel(/^Ships a fix for/).inputValue(), number);
  assert.match(await form.getByLabel("Title").inputValue(), new RegExp(`^Fix ${number}: 5 reports from 4 organisations`));
  assert.equal(await form.getByLabel("Alerts while in progress").inputValue(), "off", "a fix pages as usual");
  await form.getByLabel("Title").fill("Stop the ticket store dropping saves");
  await form.getByLabel("Implementer").selectOption("hal");
  await form.getByRole("button", { name: "Save as draft" }).click();
  assert.match(form.url(), /\/changes\/CHG-\d+$/);
  const fix = form.url().match(/CHG-\d+/)[0];
  await form.getByRole("link", { name: number, exact: true }).click();
  assert.match(await form.locator("ul.linked-changes").textContent(), new RegExp(`Fix\\s+${fix} Stop the ticket store dropping saves\\s+draft`));
  assert.match(await form.locator(".timeline").textContent(), new RegExp(`Fix ${fix} "Stop the ticket store dropping saves" linked \\(draft; by user:demo\\)`));
  // A change that exists already is linked from the incident page by its number.
  await form.getByLabel("Change that fixes it").fill("CHG-99999");
  await form.getByRole("button", { name: "Link as a fix" }).click();
  assert.match(await form.getByRole("alert").textContent(), /no change CHG-99999/);
  await list.close();
  await form.close();
});

test("plan two changes in one sandbox: the form checks live, the calendar flags the conflict, the change page acts", async () => {
  const page = await browser.newPage();
  await signIn(page);
  // Tomorrow, in UTC (the demo admin is no catalog person, so pages show UTC).
  const day = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
  const plan = async (service, title, implementer, from, to) => {
    await page.goto(`${base}/changes/new?service=${service}`);
    await page.getByLabel("Title").fill(title);
    await page.getByLabel("Implementer").selectOption(implementer);
    await page.getByLabel(/^Start/).fill(`${day}T${from}`);
    await page.getByLabel(/^End/).fill(`${day}T${to}`);
  };
  await plan("phone-switch", "Patch and fail over the phone switch", "rodney", "03:00", "06:00");
  await page.locator("#live-check").getByText("No conflicts.").waitFor();
  await page.getByRole("button", { name: "Save as draft" }).click();
  assert.match(page.url(), /\/changes\/CHG-\d+$/);
  const switchNumber = page.url().match(/CHG-\d+/)[0];
  assert.match(await page.locator("#conflicts + p").textContent(), /None/);

  // The GES deploy in the same window: the form shows the collision two hops away, and
  // who is doing what around GES, before anything is saved.
  await plan("ges", "Deploy GES 4.2", "jared", "04:00", "05:00");
  const live = page.locator("#live-check");
  await live.getByText("dependency").waitFor();
  assert.match(await live.textContent(), new RegExp(`${switchNumber}.*phone-switch`, "s"));
  assert.match(await live.textContent(), /ges → agent-portal → phone-switch|ges – agent-portal – phone-switch/);
  await page.locator("#live-sandbox").getByText(switchNumber, { exact: false }).first().waitFor();
  await page.screenshot({ path: join(results, "change-form.png"), fullPage: true });
  // A window that ends before it starts is named before saving.
  await page.getByLabel(/^End/).fill(`${day}T02:00`);
  await live.getByText(/end: must be after start/).waitFor();
  await page.getByLabel(/^End/).fill(`${day}T05:00`);
  await page.getByRole("button", { name: "Save as draft" }).click();
  assert.match(page.url(), /\/changes\/CHG-\d+$/);
  const gesNumber = page.url().match(/CHG-\d+/)[0];
  assert.match(await page.locator("ul.conflicts").textContent(), /dependency/);

  // Submit; an approval needs a person, which the demo admin is not: the page says so.
  await page.getByRole("button", { name: "Submit for approval" }).click();
  assert.match(await page.locator("h1 + p").textContent(), /submitted/);
  await page.getByRole("button", { name: "Approve" }).click();
  assert.match(await page.getByRole("alert").textContent(), /not linked to a person/);

  // The week's calendar shows both, the GES deploy flagged; filtered by team, one.
  await page.goto(`${base}/changes?view=week&at=${day}`);
  const cell = page.locator(`td[data-date="${day}"]`);
  assert.match(await cell.locator(`a[href="/changes/${gesNumber}"]`).textContent(), /Deploy GES 4.2.*⚠ 1/s);
  assert.match(await cell.locator(`a[href="/changes/${gesNumber}"]`).getAttribute("class"), /state-submitted/);
  assert.match(await cell.locator(`a[href="/changes/${switchNumber}"]`).getAttribute("class"), /state-draft/);
  await page.screenshot({ path: join(results, "changes-week.png"), fullPage: true });
  await page.getByLabel("Team").selectOption("contact-centre");
  await page.getByRole("button", { name: "Show" }).click();
  assert.equal(await page.locator("a.entry[href^='/changes/CHG-']").count(), 1);

  // An iCalendar link for the filtered calendar, shown once, serves both as events.
  await page.getByRole("button", { name: /Make an iCalendar link for contact-centre/ }).click();
  const url = (await page.locator("#feed-url").textContent()).trim();
  assert.match(url, /\/calendar\/changes\/chcal_\w+\.ics$/);
  const feed = await (await fetch(url)).text();
  assert.match(feed, new RegExp(`SUMMARY:${switchNumber} Patch and fail over the phone switch \\(draft\\)`));
  assert.doesNotMatch(feed, /Deploy GES/);

  // The agent portal's sandbox at 04:30 shows who else is playing in it (the panel its
  // service page shows for now).
  await page.goto(`${base}/sandbox?service=agent-portal&at=${day}T04:30`);
  const sandbox = await page.locator(".sandbox").textContent();
  assert.ok(sandbox.includes(switchNumber) && sandbox.includes(gesNumber), sandbox);
  await page.close();
});

test("the renewals board: a licence moves from due to received, refusals name the field, the timeline charts the year", async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await signIn(page);
  await page.goto(`${base}/renewals`);
  await page.getByRole("heading", { name: "Renewals", level: 1 }).waitFor();
  const due = page.locator("section.board-column", { has: page.getByRole("heading", { name: /^Due/ }) });
  const card = due.locator('[data-renewable="formprint-licence"]');
  await card.waitFor();
  assert.match(await card.textContent(), /days left/);
  assert.match(await card.textContent(), /due, not ordered/);
  const chart = page.getByRole("img", { name: /Renewables expiring per month/ });
  assert.equal(await chart.locator("g").count(), 12, "one bar per month");

  await card.getByRole("link", { name: "FormPrint server licence key" }).click();
  await page.getByRole("heading", { name: "FormPrint server licence key" }).waitFor();
  // Out of order: refused on the page, naming the field; nothing moves.
  await page.getByLabel("Stage").selectOption("received");
  await page.getByRole("button", { name: "Record" }).click();
  await page.getByRole("alert").waitFor();
  assert.match(await page.getByRole("alert").textContent(), /stage: received comes after ordered/);

  await page.getByLabel("Stage").selectOption("ordered");
  await page.getByLabel("Reference").fill("PO-4471");
  await page.getByRole("button", { name: "Record" }).click();
  await page.locator(".status-line").waitFor();
  assert.match(await page.locator(".status-line").textContent(), /^ordered today by /);

  await page.getByLabel("Stage").selectOption("received");
  await page.getByLabel("New expiry").fill("2028-02-01");
  await page.getByRole("button", { name: "Record" }).click();
  await page.waitForFunction(() => document.querySelector(".status-line")?.textContent.startsWith("received"));
  await page.getByLabel("Stage").selectOption("applied");
  await page.getByLabel("Target").selectOption("org-01");
  await page.getByRole("button", { name: "Record" }).click();
  await page.waitForFunction(() => document.querySelector(".status-line")?.textContent.includes("applied 1 of 11"));
  const row = page.getByRole("row", { name: /^org-01 applied/ });
  await row.waitFor();
  await page.screenshot({ path: `${results}renewable.png`, fullPage: true });

  // On the board it now sits in Received (the earliest stage of any target).
  await page.goto(`${base}/renewals`);
  const received = page.locator("section.board-column", { has: page.getByRole("heading", { name: /^Received/ }) });
  const moved = received.locator('[data-renewable="formprint-licence"]');
  await moved.waitFor();
  assert.equal(await moved.locator(".bars").getAttribute("aria-label"), "applied 1 of 11, verified 0 of 11");
  await page.screenshot({ path: `${results}renewals-board.png`, fullPage: true });
  await context.close();
});
