//! Pages over plain HTTP: sign-in, throttling, CSRF, sessions, escaping.

use crate::common::{Backend, seeded, send};
use crate::on_both_databases;
use reqwest::{Client, Method, StatusCode, header};
use serde_json::json;

on_both_databases!(
    sign_in_is_protected_and_throttled,
    sessions_need_csrf_for_writes_and_pages_escape_text,
    on_call_pages_show_schedules_people_and_the_notification_log,
    change_pages_plan_check_act_and_show_the_sandbox
);

fn no_redirects() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The value of `name=` in a response's Set-Cookie headers.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<(String, String)> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let (pair, attributes) = v.split_once(';').unwrap_or((v, ""));
            let (k, value) = pair.split_once('=')?;
            (k == name).then(|| (value.to_string(), attributes.to_string()))
        })
}

fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} field in {html}"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_string()
}

/// A page fetched with a session cookie.
async fn signed_in_get(client: &Client, cookie: &str, url: String) -> reqwest::Response {
    client
        .get(url)
        .header(header::COOKIE, cookie)
        .send()
        .await
        .unwrap()
}

/// A page form posted with a session cookie and a CSRF token.
async fn post_form(client: &Client, cookie: &str, url: String, csrf: &str) -> reqwest::Response {
    client
        .post(url)
        .header(header::COOKIE, cookie)
        .form(&[("csrf", csrf)])
        .send()
        .await
        .unwrap()
}

struct SignIn {
    cookie: String,
    csrf: String,
}

async fn sign_in_form(client: &Client, base: &str) -> SignIn {
    let response = client.get(format!("{base}/sign-in")).send().await.unwrap();
    let (cookie, _) = set_cookie(&response, "muster_signin").expect("a sign-in CSRF cookie");
    let csrf = hidden(&response.text().await.unwrap(), "csrf");
    SignIn { cookie, csrf }
}

async fn post_sign_in(
    client: &Client,
    base: &str,
    form: &SignIn,
    username: &str,
    password: &str,
    next: &str,
) -> reqwest::Response {
    client
        .post(format!("{base}/sign-in"))
        .header(header::COOKIE, format!("muster_signin={}", form.cookie))
        .form(&[
            ("csrf", form.csrf.as_str()),
            ("username", username),
            ("password", password),
            ("next", next),
        ])
        .send()
        .await
        .unwrap()
}

async fn sign_in_is_protected_and_throttled(backend: Backend) {
    let (db, server) = seeded(backend).await;
    db.cli_ok(
        &[
            "user",
            "create",
            "--username",
            "ann",
            "--role",
            "viewer",
            "--password-stdin",
        ],
        Some("correct horse battery"),
    );
    db.cli_ok(
        &[
            "user",
            "create",
            "--username",
            "bob",
            "--role",
            "viewer",
            "--password-stdin",
        ],
        Some("another long password"),
    );
    let client = no_redirects();
    let base = &server.base;

    let response = client
        .get(format!("{base}/services?team=platform"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        response.headers()[header::LOCATION],
        "/sign-in?next=%2Fservices%3Fteam%3Dplatform"
    );

    let form = sign_in_form(&client, base).await;
    let forged = SignIn {
        cookie: form.cookie.clone(),
        csrf: "forged".into(),
    };
    let response = post_sign_in(&client, base, &forged, "ann", "correct horse battery", "/").await;
    assert_eq!(
        response.status(),
        StatusCode::FORBIDDEN,
        "a sign-in without the form's CSRF token is refused"
    );

    for _ in 0..5 {
        let response = post_sign_in(&client, base, &form, "ann", "wrong password!!", "/").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(
            response
                .text()
                .await
                .unwrap()
                .contains("Wrong username or password.")
        );
    }
    let response = post_sign_in(&client, base, &form, "ann", "correct horse battery", "/").await;
    assert_eq!(
        response.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "throttled even with the right password"
    );
    // The throttle is per username: bob signs in, and an outside `next` is not followed.
    let response = post_sign_in(
        &client,
        base,
        &form,
        "bob",
        "another long password",
        "//evil.example/",
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[header::LOCATION], "/");
    let (session, attributes) = set_cookie(&response, "muster_session").expect("a session cookie");
    assert!(
        attributes.contains("HttpOnly") && attributes.contains("SameSite=Lax"),
        "{attributes}"
    );
    assert_eq!(session.len(), 43);
    // Fifteen minutes later ann may try again.
    server
        .post("/api/v1/test/clock", json!({"advance": "16m"}))
        .await;
    let response = post_sign_in(
        &client,
        base,
        &form,
        "ann",
        "correct horse battery",
        "/teams",
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[header::LOCATION], "/teams");
    let (_, audit) = server.get("/api/v1/audit?entity=user:ann").await;
    assert_eq!(audit["items"][0]["action"], "sign_in");
}

async fn sessions_need_csrf_for_writes_and_pages_escape_text(backend: Backend) {
    let (db, server) = seeded(backend).await;
    db.cli_ok(
        &[
            "user",
            "create",
            "--username",
            "ed",
            "--role",
            "editor",
            "--password-stdin",
        ],
        Some("a long editor password"),
    );
    let client = no_redirects();
    let base = &server.base;
    let form = sign_in_form(&client, base).await;
    let response = post_sign_in(&client, base, &form, "ed", "a long editor password", "/").await;
    let (session, _) = set_cookie(&response, "muster_session").unwrap();
    let cookie = format!("muster_session={session}");

    let page = signed_in_get(&client, &cookie, format!("{base}/services/identity")).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("href=\"/services/forms-printing\""));
    let csrf = hidden(&html, "csrf");

    // The API accepts the session for reads, and for writes only with the CSRF token.
    let hostile = json!({"id": "xss", "name": "<script>alert(1)</script>", "owner": "platform"});
    let (status, _) = send(
        client
            .get(format!("{base}/api/v1/teams"))
            .header(header::COOKIE, &cookie),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = send(
        client
            .post(format!("{base}/api/v1/services"))
            .header(header::COOKIE, &cookie)
            .json(&hostile),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = send(
        client
            .post(format!("{base}/api/v1/services"))
            .header(header::COOKIE, &cookie)
            .header("x-csrf-token", &csrf)
            .json(&hostile),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, audit) = server.get("/api/v1/audit?entity=service:xss").await;
    assert_eq!(audit["items"][0]["actor"], "user:ed");

    let html = signed_in_get(&client, &cookie, format!("{base}/services/xss"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;") || html.contains("&#60;script&#62;"),
        "text is escaped"
    );
    assert!(!html.contains("<script>alert(1)</script>"));
    let history = signed_in_get(&client, &cookie, format!("{base}/audit?entity=service:xss"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        history.contains("before / after") && history.contains("(did not exist)"),
        "the audit page shows what changed"
    );
    assert!(history.contains("&lt;script&gt;") || history.contains("&#60;script&#62;"));
    assert!(!history.contains("<script>alert"));
    let bad = signed_in_get(&client, &cookie, format!("{base}/audit?since=yesterday")).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert!(
        bad.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "pages answer errors as pages"
    );
    assert!(bad.text().await.unwrap().contains("since: "));
    let missing = signed_in_get(&client, &cookie, format!("{base}/services/no-such")).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    // Signing out needs the token too, then ends the session.
    let response = post_form(&client, &cookie, format!("{base}/sign-out"), "wrong").await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = post_form(&client, &cookie, format!("{base}/sign-out"), &csrf).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let response = signed_in_get(&client, &cookie, format!("{base}/teams")).await;
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "the session is gone"
    );
}

async fn on_call_pages_show_schedules_people_and_the_notification_log(backend: Backend) {
    let (db, server) = seeded(backend).await;
    for (user, role) in [("rita", "responder"), ("vera", "viewer")] {
        db.cli_ok(
            &[
                "user",
                "create",
                "--username",
                user,
                "--role",
                role,
                "--password-stdin",
            ],
            Some("a long enough password"),
        );
    }
    // Paul covers Dana's Tuesday.
    let (status, body) = server
        .post(
            "/api/v1/schedules/print-platform-primary/overrides",
            json!({"person": "paul", "replaces": "dana", "from": "2026-11-24T09:00:00Z", "to": "2026-11-25T09:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let client = no_redirects();
    let base = &server.base;
    let form = sign_in_form(&client, base).await;
    let response = post_sign_in(&client, base, &form, "rita", "a long enough password", "/").await;
    let cookie = format!(
        "muster_session={}",
        set_cookie(&response, "muster_session").unwrap().0
    );
    let page = |path: &str| {
        let (client, cookie) = (&client, &cookie);
        let url = format!("{base}{path}");
        async move {
            let response = signed_in_get(client, cookie, url).await;
            assert_eq!(response.status(), StatusCode::OK);
            response.text().await.unwrap()
        }
    };

    let home = page("/").await;
    assert!(home.contains("Who is on call now"), "{home}");
    assert!(
        home.contains("href=\"/people/dana\">Dana Okafor</a>"),
        "print-platform pages Dana now"
    );

    let oncall = page("/oncall").await;
    assert!(oncall.contains("href=\"/schedules/print-platform-primary\""));
    assert!(
        oncall.contains("Hal Burke</a>, <a href=\"/people/hope\">Hope Adeyemi"),
        "a team without a policy is paged whole"
    );

    let schedule = page("/schedules/print-platform-primary").await;
    assert!(schedule.contains("<svg class=\"timeline\""));
    assert!(schedule.contains("Layer: weekly") && schedule.contains(">Final<"));
    assert!(
        schedule.contains(
            "Paul Grant: Tue 24 Nov 09:00 – Wed 25 Nov 09:00 GMT (replacing Dana Okafor)"
        ),
        "{schedule}"
    );
    assert!(schedule.contains("Paged for <a href=\"/teams/print-platform\">"));
    assert!(!schedule.contains("Definitions over time"), "never edited");
    // A change planned for next Monday shows as pending, and in the timeline from then.
    let (status, body) = send(
        server
            .request(Method::PATCH, "/api/v1/schedules/print-platform-primary")
            .json(
                &json!({"effective_from": "2026-11-30T09:00:00Z", "layers": [
                {"name": "weekly", "rotation": "weekly", "handoff": "Mon 09:00",
                 "start": "2026-11-02", "members": ["fran"]}]}),
            ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let schedule = page("/schedules/print-platform-primary").await;
    assert!(schedule.contains("Definitions over time"), "{schedule}");
    assert!(
        schedule.contains("weekly (fran)</td><td>pending"),
        "{schedule}"
    );
    assert!(
        schedule.contains("weekly (dana, eli, fran)</td><td>in force"),
        "{schedule}"
    );
    assert!(
        schedule.contains("Fran Costa: Mon 30 Nov 09:00 – "),
        "{schedule}"
    );
    let missing = signed_in_get(&client, &cookie, format!("{base}/schedules/nope")).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let team = page("/teams/print-platform").await;
    assert!(team.contains("schedule <a href=\"/schedules/print-platform-primary\">"));
    assert!(team.contains("Repeated 2 more times"));

    let dana = page("/people/dana").await;
    assert!(dana.contains("On call in the next 14 days"));
    assert!(dana.contains("href=\"/schedules/print-platform-primary\""));
    let csrf = hidden(&dana, "csrf");
    // The test button: CSRF checked, then one message per contact method.
    let response = post_form(
        &client,
        &cookie,
        format!("{base}/people/dana/test-notification"),
        "forged",
    )
    .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = post_form(
        &client,
        &cookie,
        format!("{base}/people/dana/test-notification"),
        &csrf,
    )
    .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let location = response.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        location,
        "/people/dana?tested=1&by_rules=false#notifications"
    );
    let dana = page("/people/dana?tested=1").await;
    assert!(dana.contains("every contact method at once"), "no rules");
    assert!(!dana.contains("Send a test page by the rules"));
    // Email at once and again after ten minutes: shown in words, with a button to try.
    let (status, body) = send(
        server
            .request(Method::PATCH, "/api/v1/people/dana")
            .json(&json!({"notification_rules": [{"contact": "email"},
                                                 {"contact": "email", "after": "10m"}]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let with_rules = page("/people/dana").await;
    assert!(
        with_rules.contains("<li>email at once</li><li>email after 10m</li>"),
        "{with_rules}"
    );
    assert!(with_rules.contains("Send a test page by the rules"));
    // The reminder ten minutes in shows when it will go.
    let (status, body) = server
        .post(
            "/api/v1/people/dana/test-notification?follow_rules=true",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let waiting = page("/people/dana").await;
    assert!(
        waiting.contains(
            "queued</span> <span class=\"muted\">until <time datetime=\"2026-11-23T10:10:00Z\">"
        ),
        "{waiting}"
    );
    assert!(dana.contains("Queued 1 test message,"));
    assert!(dana.contains("Muster test notification for Dana Okafor"));
    let log = page("/notifications?recipient=dana").await;
    assert!(log.contains("Muster test notification for Dana Okafor"));
    assert!(log.contains(">email<"));

    // A viewer sees no button and is refused by the form handler.
    let form = sign_in_form(&client, base).await;
    let response = post_sign_in(&client, base, &form, "vera", "a long enough password", "/").await;
    let viewer = format!(
        "muster_session={}",
        set_cookie(&response, "muster_session").unwrap().0
    );
    let html = signed_in_get(&client, &viewer, format!("{base}/people/dana"))
        .await
        .text()
        .await
        .unwrap();
    assert!(!html.contains("Send a test"));
    let viewer_csrf = hidden(&html, "csrf");
    let response = post_form(
        &client,
        &viewer,
        format!("{base}/people/dana/test-notification"),
        &viewer_csrf,
    )
    .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

/// Signs `user` in (made with `role`, acting as catalog person `person`) and answers
/// the session cookie.
async fn person_session(
    db: &crate::common::Database,
    client: &Client,
    base: &str,
    person: &str,
) -> String {
    db.cli_ok(
        &[
            "user",
            "create",
            "--username",
            person,
            "--role",
            "responder",
            "--person",
            person,
            "--password-stdin",
        ],
        Some("a long enough password"),
    );
    let form = sign_in_form(client, base).await;
    let response = post_sign_in(client, base, &form, person, "a long enough password", "/").await;
    format!(
        "muster_session={}",
        set_cookie(&response, "muster_session").unwrap().0
    )
}

async fn change_pages_plan_check_act_and_show_the_sandbox(backend: Backend) {
    let (db, server) = seeded(backend).await;
    // The morning of the work (sessions would not last the days in between).
    let (status, _) = server
        .post("/api/v1/test/clock", json!({"now": "2026-11-25T08:00:00Z"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let client = no_redirects();
    let base = &server.base;
    let rodney = person_session(&db, &client, base, "rodney").await;
    let rita = person_session(&db, &client, base, "rita").await;
    let get = |cookie: &str, path: &str| {
        let (client, cookie, url) = (&client, cookie.to_string(), format!("{base}{path}"));
        async move { signed_in_get(client, &cookie, url).await }
    };
    let form = get(&rodney, "/changes/new?service=phone-switch").await;
    assert_eq!(form.status(), StatusCode::OK);
    let html = form.text().await.unwrap();
    assert!(
        html.contains("<option value=\"phone-switch\" selected>"),
        "{html}"
    );
    assert!(
        html.contains("Start (America/Denver)"),
        "times in rodney's zone"
    );
    let csrf = hidden(&html, "csrf");
    // rodney types Denver times: 03:00–06:00 is 10:00–13:00 UTC.
    let fields = |csrf: &str, title: &str, service: &str, start: &str, end: &str| {
        vec![
            ("csrf", csrf.to_string()),
            ("title", title.to_string()),
            ("services", service.to_string()),
            ("start", start.to_string()),
            ("end", end.to_string()),
            ("type", "normal".to_string()),
            ("risk", "low".to_string()),
            ("implementer", "rodney".to_string()),
            ("rollback_plan", "Fail back".to_string()),
            ("suppress_alerts", String::new()),
        ]
    };
    let post = |cookie: &str, path: &str, form: Vec<(&'static str, String)>| {
        let (client, cookie, url) = (&client, cookie.to_string(), format!("{base}{path}"));
        async move {
            client
                .post(url)
                .header(header::COOKIE, cookie)
                .form(&form)
                .send()
                .await
                .unwrap()
        }
    };
    let forged = post(
        &rodney,
        "/changes/new",
        fields(
            "forged",
            "x",
            "phone-switch",
            "2026-11-25T03:00",
            "2026-11-25T06:00",
        ),
    )
    .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let saved = post(
        &rodney,
        "/changes/new",
        fields(
            &csrf,
            "Patch <the> switch",
            "phone-switch",
            "2026-11-25T03:00",
            "2026-11-25T06:00",
        ),
    )
    .await;
    assert_eq!(saved.status(), StatusCode::SEE_OTHER);
    let location = saved.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(location, "/changes/CHG-1");
    let (_, stored) = server.get("/api/v1/changes/CHG-1").await;
    assert_eq!(stored["start"], "2026-11-25T10:00:00Z");
    assert_eq!(stored["suppress_alerts"], true);

    // The live check names the collision for GES work in the same window, and what a
    // bad window lacks; nothing is stored by checking.
    let check = post(
        &rodney,
        "/changes/check",
        fields(&csrf, "GES", "ges", "2026-11-25T04:00", "2026-11-25T05:00"),
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(
        check.contains(">dependency</span>") && check.contains("CHG-1"),
        "{check}"
    );
    let check = post(
        &rodney,
        "/changes/check",
        fields(&csrf, "GES", "ges", "2026-11-25T04:00", "2026-11-25T03:00"),
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(check.contains("end: must be after start"), "{check}");
    // A refused save keeps what was typed and names each problem.
    let refused = post(
        &rodney,
        "/changes/new",
        fields(&csrf, "", "nope", "2026-11-25T04:00", "2026-11-25T05:00"),
    )
    .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = refused.text().await.unwrap();
    assert!(html.contains("title: is required") && html.contains("services[0]: no service"));
    assert!(html.contains("value=\"2026-11-25T04:00\""));
    let (_, listed) = server.get("/api/v1/changes").await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);

    // The change page escapes text and offers what the state allows.
    let page = get(&rodney, "/changes/CHG-1").await.text().await.unwrap();
    assert!(
        page.contains("Patch &#60;the&#62; switch") || page.contains("Patch &lt;the&gt; switch"),
        "{page}"
    );
    assert!(page.contains("value=\"submit\"") && !page.contains("value=\"start\""));
    let act = |cookie: &str, action: &str| {
        post(
            cookie,
            "/changes/CHG-1/act",
            vec![
                ("csrf", csrf.clone()),
                ("action", action.to_string()),
                ("reason", String::new()),
            ],
        )
    };
    assert_eq!(act(&rodney, "submit").await.status(), StatusCode::SEE_OTHER);
    // rita's session has its own CSRF token.
    let rita_page = get(&rita, "/changes/CHG-1").await.text().await.unwrap();
    let rita_csrf = hidden(&rita_page, "csrf");
    let approve = post(
        &rita,
        "/changes/CHG-1/act",
        vec![("csrf", rita_csrf.clone()), ("action", "approve".into())],
    )
    .await;
    assert_eq!(
        approve.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "tier 1 without evidence"
    );
    assert!(approve.text().await.unwrap().contains("risk acceptance"));
    let accepted = post(
        &rita,
        "/changes/CHG-1/risk-acceptance",
        vec![
            ("csrf", rita_csrf.clone()),
            ("accepted_by", "rita".into()),
            ("on_behalf_of", "contact-centre".into()),
            ("reason", "Routine patch".into()),
            (
                "declined_recommendation",
                "Test on the backup switch".into(),
            ),
        ],
    )
    .await;
    assert_eq!(accepted.status(), StatusCode::SEE_OTHER);
    let approve = post(
        &rita,
        "/changes/CHG-1/act",
        vec![("csrf", rita_csrf), ("action", "approve".into())],
    )
    .await;
    assert_eq!(approve.status(), StatusCode::SEE_OTHER);
    let page = get(&rodney, "/changes/CHG-1").await.text().await.unwrap();
    assert!(page.contains("Risk accepted") && page.contains("Test on the backup switch"));
    assert!(page.contains("state-approved") && page.contains("value=\"start\""));

    // The calendar shows it on its day, in rodney's zone; a bad filter is named.
    let calendar = get(&rodney, "/changes?view=week&at=2026-11-25")
        .await
        .text()
        .await
        .unwrap();
    assert!(calendar.contains("data-date=\"2026-11-25\""), "{calendar}");
    assert!(calendar.contains("03:00–06:00</span> CHG-1"), "{calendar}");
    let bad = get(&rodney, "/changes?view=year").await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert!(bad.text().await.unwrap().contains("view"));
    assert_eq!(
        get(&rodney, "/changes/CHG-99").await.status(),
        StatusCode::NOT_FOUND
    );

    // The sandbox panel for the change form, and on the agent portal's page.
    let sandbox = get(&rodney, "/sandbox?service=agent-portal&at=2026-11-25T04:00")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        sandbox.contains("CHG-1") && sandbox.contains("agent-portal → phone-switch"),
        "{sandbox}"
    );
    let service = get(&rodney, "/services/phone-switch")
        .await
        .text()
        .await
        .unwrap();
    assert!(service.contains("Who else is playing in the sandbox"));
    let missing = get(&rodney, "/sandbox?service=nope").await;
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);

    // Under way, the change shows on an incident on the portal it serves, and is marked
    // as its cause from there.
    let (status, _) = server
        .post("/api/v1/test/clock", json!({"now": "2026-11-25T10:30:00Z"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(act(&rodney, "start").await.status(), StatusCode::SEE_OTHER);
    let (status, incident) = server
        .post(
            "/api/v1/incidents",
            json!({"service": "agent-portal", "title": "Calls drop"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{incident}");
    let number = incident["number"].as_str().unwrap();
    let page = get(&rodney, &format!("/incidents/{number}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Changes near this") && page.contains("href=\"/changes/CHG-1\""),
        "{page}"
    );
    let marked = post(
        &rodney,
        &format!("/incidents/{number}/caused-by"),
        vec![("csrf", csrf.clone()), ("change", "CHG-1".into())],
    )
    .await;
    assert_eq!(marked.status(), StatusCode::SEE_OTHER);
    let (_, change) = server.get("/api/v1/changes/CHG-1").await;
    assert_eq!(change["caused_incidents"], json!([number]));
    let again = post(
        &rodney,
        &format!("/incidents/{number}/caused-by"),
        vec![("csrf", csrf.clone()), ("change", "CHG-1".into())],
    )
    .await;
    assert_eq!(again.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let refusal = again.text().await.unwrap();
    assert!(refusal.contains("role=\"alert\""), "marked once: {refusal}");
    // An action out of order is refused on the page with its reason.
    let resolve = || {
        post(
            &rodney,
            &format!("/incidents/{number}/act"),
            vec![
                ("csrf", csrf.clone()),
                ("action", "resolve".into()),
                ("text", String::new()),
            ],
        )
    };
    assert_eq!(resolve().await.status(), StatusCode::SEE_OTHER);
    let twice = resolve().await;
    assert_eq!(twice.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let refusal = twice.text().await.unwrap();
    assert!(
        refusal.contains("cannot resolve: the incident is resolved"),
        "{refusal}"
    );
}
