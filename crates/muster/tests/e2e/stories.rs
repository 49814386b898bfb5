//! The five stories (`shared/world/stories.md`), as far as the catalog carries them:
//! the facts each later capability will read from the graph. Later releases extend
//! these scenarios with renewals, changes, incidents and the muster of responders.

use crate::common::{Backend, seeded, texts_at};
use crate::on_both_databases;

on_both_databases!(
    licence_story_counts_the_organisations_behind_forms_printing,
    sandbox_story_sees_both_teams_serving_the_agent_portal,
    pinned_certificate_story_reaches_the_desktop_client_customers,
    insisted_change_story_knows_the_login_servers_and_their_owner,
);

async fn licence_story_counts_the_organisations_behind_forms_printing(backend: Backend) {
    let (_db, server) = seeded(backend).await;
    // The licence server breaks: forms printing breaks for every organisation using it.
    let (_, impact) = server
        .get("/api/v1/services/print-licence-server/impact")
        .await;
    assert_eq!(
        texts_at(&impact["dependents"], "/service"),
        ["forms-printing"]
    );
    let orgs = texts_at(&impact["organisations"], "/id");
    assert_eq!(
        orgs.len(),
        11,
        "11 organisations use forms-printing: {orgs:?}"
    );
    let uses = |org: &str| orgs.iter().any(|o| o == org);
    assert!(uses("northwind") && uses("org-10") && !uses("reservations"));
    assert_eq!(texts_at(&impact["teams"], "/team"), ["print-platform"]);
    // The renewable that will drive the story is stored with its 11 targets.
    let (_, catalog) = crate::common::send(
        server
            .request(reqwest::Method::GET, "/api/v1/catalog")
            .header("accept", "application/json"),
    )
    .await;
    let licence = catalog["renewables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "formprint-licence")
        .unwrap();
    assert_eq!(licence["targets"].as_array().unwrap().len(), 11);
    assert_eq!(licence["buyer"], "procurement");
}

async fn sandbox_story_sees_both_teams_serving_the_agent_portal(backend: Backend) {
    let (_db, server) = seeded(backend).await;
    let (_, switch) = server.get("/api/v1/services/phone-switch/impact").await;
    let (_, ges) = server.get("/api/v1/services/ges/impact").await;
    assert_eq!(
        texts_at(&switch["dependents"], "/service"),
        ["agent-portal"]
    );
    assert_eq!(texts_at(&ges["dependents"], "/service"), ["agent-portal"]);
    // Two hops apart through the portal, owned by two different teams.
    let (_, portal) = server
        .get("/api/v1/services/agent-portal/dependencies")
        .await;
    let direct: Vec<&str> = portal["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["distance"] == 1)
        .map(|d| d["service"].as_str().unwrap())
        .collect();
    assert_eq!(direct, ["ges", "phone-switch"]);
    assert_eq!(
        texts_at(&ges["teams"], "/team"),
        ["contact-centre", "ges-team"]
    );
    assert_eq!(texts_at(&switch["organisations"], "/id"), ["reservations"]);
}

async fn pinned_certificate_story_reaches_the_desktop_client_customers(backend: Backend) {
    let (_db, server) = seeded(backend).await;
    let (_, impact) = server.get("/api/v1/services/public-api/impact").await;
    assert_eq!(
        texts_at(&impact["dependents"], "/service"),
        ["desktop-client"]
    );
    assert_eq!(
        texts_at(&impact["organisations"], "/id"),
        ["org-03", "org-05", "org-07"]
    );
}

async fn insisted_change_story_knows_the_login_servers_and_their_owner(backend: Backend) {
    let (_db, server) = seeded(backend).await;
    let (_, login) = server.get("/api/v1/services/northwind-login").await;
    let (_, backup) = server.get("/api/v1/services/northwind-login-backup").await;
    assert_eq!(
        (login["owner"].as_str(), backup["owner"].as_str()),
        (Some("hosting"), Some("hosting"))
    );
    assert_eq!(login["depends_on"], backup["depends_on"]);
    let (_, impact) = server.get("/api/v1/services/northwind-login/impact").await;
    assert_eq!(texts_at(&impact["organisations"], "/id"), ["northwind"]);
    let (_, team) = server.get("/api/v1/teams/hosting").await;
    assert_eq!(team["members"], serde_json::json!(["hank", "hiro"]));
}
