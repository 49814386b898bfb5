//! On-call at the scale: a schedule of 5 layers (50 members, DST-observing
//! zone, `active` windows, one crossing midnight) with 100 overrides (half in the
//! catalog, half made at run time); `oncall?at=` latency and one year of final shifts
//! over HTTP; then 10,000 queued messages delivered by the engine to a webhook
//! receiver on loopback.

use crate::server::Receiver;
use crate::{Args, Rng, ms, percentile, progress, serve, viewer_token};
use jiff::{Timestamp, ToSpan};
use muster_domain::audit::Actor;
use muster_domain::catalog::apply::plan_import;
use muster_domain::catalog::{Catalog, Person, Team};
use muster_domain::notify::{Channel, DEFAULT_RETRY_HORIZON, Throttle};
use muster_domain::oncall::Override;
use muster_store::Store;
use muster_store::notify::NewNotification;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MEMBERS: usize = 50;
const OVERRIDES: usize = 100;
/// Where the measured year starts.
const FROM: &str = "2026-11-23T00:00:00Z";
/// One year of shifts is asked this many times.
const YEAR_REQUESTS: usize = 20;
/// Messages per contact method: within the default throttle (10 per 10 minutes), so
/// each message travels alone, as pages to many people do.
const PER_CONTACT: usize = 10;

pub struct Figures {
    backend: &'static str,
    oncall: (Duration, Duration),
    year: (Duration, Duration),
    shifts_in_year: usize,
    enqueue: Duration,
    delivery: Duration,
    messages: usize,
}

/// The schedule: five layers of ten members each, in Denver (DST changes in March and
/// November), with 50 overrides of its own.
fn schedule(start: Timestamp) -> Value {
    let members =
        |layer: usize| -> Vec<String> { (0..10).map(|m| format!("p{}", layer * 10 + m)).collect() };
    let overrides: Vec<Value> = (0..OVERRIDES / 2)
        .map(|i| {
            let from = start + (i as i64 * 7 * 24 + 3).hours();
            let replaces = (i % 2 == 0).then(|| format!("p{}", i % 10));
            json!({"person": format!("p{}", (i * 7) % MEMBERS), "replaces": replaces,
                   "from": from.to_string(), "to": (from + 30.hours()).to_string()})
        })
        .map(|mut o| {
            if o["replaces"].is_null() {
                o.as_object_mut().map(|m| m.remove("replaces"));
            }
            o
        })
        .collect();
    json!({
        "id": "bench", "timezone": "America/Denver",
        "layers": [
            {"name": "weekly", "rotation": "weekly", "handoff": "Mon 09:00", "start": "2026-11-02", "members": members(0)},
            {"name": "office", "rotation": "daily", "handoff": "08:00", "start": "2026-11-02", "members": members(1),
             "active": {"days": ["Mon", "Tue", "Wed", "Thu", "Fri"], "from": "09:00", "to": "17:30"}},
            {"name": "weekend", "rotation": "12h", "handoff": "07:00", "start": "2026-11-02", "members": members(2),
             "active": {"days": ["Sat", "Sun"], "from": "00:00", "to": "00:00"}},
            {"name": "nights", "rotation": "8h", "handoff": "06:00", "start": "2026-11-02", "members": members(3),
             "active": {"from": "22:00", "to": "06:00"}},
            {"name": "cover", "rotation": "3d", "handoff": "10:00", "start": "2026-11-02", "members": members(4),
             "active": {"days": ["Wed"], "from": "12:00", "to": "14:00"}}
        ],
        "overrides": overrides
    })
}

fn world(start: Timestamp) -> Catalog {
    let people = (0..MEMBERS)
        .map(|i| Person {
            id: format!("p{i}"),
            name: format!("Person {i}"),
            email: Some(format!("p{i}@example.test")),
            timezone: "America/Denver".into(),
            contacts: vec![],
            notification_rules: vec![],
        })
        .collect();
    Catalog {
        teams: vec![Team {
            id: "bench".into(),
            name: "Bench".into(),
            members: (0..MEMBERS).map(|i| format!("p{i}")).collect(),
            escalation_policy: None,
            description: None,
        }],
        people,
        schedules: vec![schedule(start)],
        ..Catalog::default()
    }
}

/// Times `count` GETs of the paths `path_of` gives; p50 and p99 (or max).
async fn timed(
    label: &str,
    client: &reqwest::Client,
    token: &str,
    urls: Vec<String>,
    check: impl Fn(&Value) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<Duration>> {
    let total = urls.len();
    let mut times = Vec::with_capacity(total);
    for (i, url) in urls.into_iter().enumerate() {
        let start = Instant::now();
        let response = client.get(&url).bearer_auth(token).send().await?;
        anyhow::ensure!(
            response.status().is_success(),
            "{label}: {}",
            response.status()
        );
        let body: Value = response.json().await?;
        times.push(start.elapsed());
        check(&body)?;
        if i % 100 == 99 || i + 1 == total {
            progress(label, i + 1, total);
        }
    }
    times.sort();
    Ok(times)
}

pub async fn measure(backend: &'static str, store: Store, args: &Args) -> anyhow::Result<Figures> {
    eprintln!("{backend}, on-call and outbox:");
    let start: Timestamp = FROM.parse()?;
    let actor = Actor::new("bench");
    let sealer = store.sealer().clone();
    let document = world(start);
    store
        .change_catalog(&actor, "import", move |current| {
            Ok(plan_import(current, document, false, &sealer)?)
        })
        .await?;
    for i in 0..OVERRIDES / 2 {
        let from = start + (i as i64 * 7 * 24 + 100).hours();
        store
            .add_override(
                &actor,
                "bench",
                Override {
                    id: String::new(),
                    person: format!("p{}", (i * 11) % MEMBERS),
                    replaces: (i % 3 == 0).then(|| format!("p{}", 10 + i % 10)),
                    from,
                    to: from + 12.hours(),
                },
            )
            .await?;
    }
    let token = viewer_token(&store).await?;
    let (base, server) = serve(&store).await?;
    let client = reqwest::Client::new();

    let mut rng = Rng(7);
    let year_seconds = 365 * 86_400;
    let urls = (0..args.requests)
        .map(|_| {
            let at = start + (rng.below(year_seconds) as i64).seconds();
            format!("{base}/api/v1/schedules/bench/oncall?at={at}")
        })
        .collect();
    let oncall = timed("oncall?at=", &client, &token, urls, |body| {
        anyhow::ensure!(body.get("oncall").is_some(), "no answer: {body}");
        Ok(())
    })
    .await?;
    let end = start + (365 * 24).hours();
    let url = format!("{base}/api/v1/schedules/bench/shifts?from={start}&to={end}");
    let shifts_in_year = Arc::new(Mutex::new(0));
    let counted = shifts_in_year.clone();
    let year = timed(
        "one year of shifts",
        &client,
        &token,
        vec![url; YEAR_REQUESTS],
        move |body| {
            let shifts = body["shifts"].as_array().map_or(0, Vec::len);
            anyhow::ensure!(shifts > 1000, "a year has shifts: {shifts}");
            *counted.lock().unwrap_or_else(|e| e.into_inner()) = shifts;
            Ok(())
        },
    )
    .await?;
    server.abort();

    let (enqueue, delivery) = outbox(&store, args.messages).await?;
    let shifts_in_year = *shifts_in_year.lock().unwrap_or_else(|e| e.into_inner());
    Ok(Figures {
        backend,
        oncall: (percentile(&oncall, 0.50), percentile(&oncall, 0.99)),
        year: (percentile(&year, 0.50), percentile(&year, 1.0)),
        shifts_in_year,
        enqueue,
        delivery,
        messages: args.messages,
    })
}

/// Queues `count` webhook messages (10 per contact method) and runs the engine until a
/// receiver on loopback has every one. Returns the time to queue and to deliver.
async fn outbox(store: &Store, count: usize) -> anyhow::Result<(Duration, Duration)> {
    let receiver = Receiver::start().await?;
    let hooks = receiver.url.clone();

    let now = store.now_ms();
    let messages: Vec<NewNotification> = (0..count)
        .map(|i| {
            let contact = i / PER_CONTACT;
            NewNotification {
                dedup_key: format!("bench:{now}:{i}"),
                recipient: format!("p{}", contact % MEMBERS),
                channel: Channel::Webhook,
                destination: format!("{hooks}/{contact}"),
                secret: None,
                subject: format!("Bench message {i}"),
                body: "Nothing needs doing.".into(),
                not_before: now,
                give_up_at: now + DEFAULT_RETRY_HORIZON.as_millis() as i64,
            }
        })
        .collect();
    let queued_at = Instant::now();
    for chunk in messages.chunks(1_000) {
        store.enqueue(chunk.to_vec()).await?;
    }
    let enqueue = queued_at.elapsed();

    let senders = muster_notify::Senders::new(None).map_err(anyhow::Error::msg)?;
    let sending = Instant::now();
    let engine = muster_engine::start(
        store.clone(),
        senders,
        muster_engine::Settings {
            throttles: Throttle::defaults(),
            alert_retention: muster_engine::DEFAULT_ALERT_RETENTION,
            public_url: "http://127.0.0.1".into(),
            probes: muster_engine::probes::ProbeSettings::defaults().map_err(anyhow::Error::msg)?,
        },
    );
    let deadline = sending + Duration::from_secs(120);
    let mut shown = 0;
    loop {
        let delivered = receiver.seen().ids.len();
        if delivered >= count {
            progress("outbox delivery", count, count);
            break;
        }
        if delivered >= shown + count / 50 {
            progress("outbox delivery", delivered, count);
            shown = delivered;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {delivered} of {count} delivered in 120 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delivery = sending.elapsed();
    engine.iter().for_each(|task| task.abort());
    let seen = receiver.seen();
    anyhow::ensure!(
        seen.requests == count,
        "{} requests for {count} messages: some were sent twice",
        seen.requests
    );
    Ok((enqueue, delivery))
}

/// Prints the on-call and outbox figures and their ratios to the targets.
pub fn report(results: &[Figures]) {
    println!(
        "\n| backend | oncall?at p50 | oncall?at p99 | one year of shifts p50 | max | shifts in the year | queue {} | deliver {} |",
        results.first().map_or(0, |f| f.messages),
        results.first().map_or(0, |f| f.messages)
    );
    println!("|---|---|---|---|---|---|---|---|");
    for f in results {
        println!(
            "| {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {} | {:.2} s | {:.2} s |",
            f.backend,
            ms(f.oncall.0),
            ms(f.oncall.1),
            ms(f.year.0),
            ms(f.year.1),
            f.shifts_in_year,
            f.enqueue.as_secs_f64(),
            f.delivery.as_secs_f64()
        );
    }
    println!("\nAgainst the targets (figure / target; below 1.00 meets it):");
    for f in results {
        println!(
            "  {:<10} oncall p99 {:.2} (target 5 ms), one year max {:.2} (target 50 ms), delivery {:.2} (target 10 s for 10,000)",
            f.backend,
            ms(f.oncall.1) / 5.0,
            ms(f.year.1) / 50.0,
            f.delivery.as_secs_f64() / 10.0 * (10_000.0 / f.messages.max(1) as f64)
        );
    }
}
