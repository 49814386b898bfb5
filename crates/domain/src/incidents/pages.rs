//! What a page says and how its messages are keyed: every message of one step of one
//! pass to one person has a stable dedup key, so the outbox never queues it twice and a
//! failed delivery finds its incident.

use crate::oncall::Page;

/// The facts a page carries.
#[derive(Debug, Clone)]
pub struct PageFacts<'a> {
    pub number: &'a str,
    pub title: &'a str,
    /// What is known so far (a renewal page names the targets still on the old item).
    pub summary: &'a str,
    pub service: &'a str,
    pub severity: &'a str,
    /// Organisations that reported it.
    pub reported: usize,
    /// Organisations that use an impacted service.
    pub using: usize,
    pub incident_url: &'a str,
    pub ack_url: &'a str,
}

/// Subject and body of a page.
pub fn page_message(facts: &PageFacts, page: &Page) -> (String, String) {
    let subject = format!(
        "[{}] {} {}: {}",
        facts.severity.to_uppercase(),
        facts.number,
        facts.service,
        facts.title
    );
    let summary = match facts.summary.trim() {
        "" => String::new(),
        text => format!("\n{text}\n\n"),
    };
    let body = format!(
        "{number} — {title}\n\
         {summary}\
         Service: {service}\n\
         Severity: {severity}\n\
         Organisations: {reported} reported, {using} use the service or what depends on it\n\
         Escalation: step {step} of pass {pass}\n\
         \n\
         Acknowledge (stops further escalation): {ack}\n\
         Incident: {url}\n",
        number = facts.number,
        title = facts.title,
        summary = summary,
        service = facts.service,
        severity = facts.severity,
        reported = facts.reported,
        using = facts.using,
        step = page.step + 1,
        pass = page.pass + 1,
        ack = facts.ack_url,
        url = facts.incident_url,
    );
    (subject, body)
}

/// The timeline's one line for a step: who was paged, and how. `reached` is each
/// person with the channels their messages went by.
pub fn paged_text(page: &Page, reached: &[(&str, Vec<&str>)]) -> String {
    let each: Vec<String> = reached
        .iter()
        .map(|(person, channels)| match channels.as_slice() {
            [] => format!("{person} (no contact method)"),
            channels => format!("{person} ({})", channels.join(", ")),
        })
        .collect();
    let people = match each.split_last() {
        None => "nobody".to_string(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    };
    format!(
        "Paged {people}: step {} of pass {}",
        page.step + 1,
        page.pass + 1
    )
}

/// The dedup key prefix of every page message of an incident.
pub fn page_prefix(incident: i64) -> String {
    format!("incident:{incident}:page:")
}

/// The dedup key of the `n`th message of one page to one person.
pub fn page_dedup_key(incident: i64, page: &Page, person: &str, n: usize) -> String {
    format!(
        "{}{}:{}:{person}:{n}",
        page_prefix(incident),
        page.pass,
        page.step
    )
}

/// The incident a page message belongs to, from its dedup key.
pub fn paged_incident(dedup_key: &str) -> Option<i64> {
    dedup_key
        .strip_prefix("incident:")?
        .split_once(":page:")?
        .0
        .parse()
        .ok()
}

/// The number people see: `INC-42`.
pub fn number(id: i64) -> String {
    format!("INC-{id}")
}

/// Reads an incident reference: `42` or `INC-42` (any case).
pub fn parse_reference(text: &str) -> Option<i64> {
    let digits = match text.get(..4) {
        Some(prefix) if prefix.eq_ignore_ascii_case("inc-") => &text[4..],
        _ => text,
    };
    digits.parse().ok().filter(|id| *id > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_keys_name_their_incident_and_references_read_both_forms() {
        let page = Page {
            at: "2026-11-24T10:00:00Z".parse().unwrap(),
            pass: 1,
            step: 0,
            people: vec!["dana".into()],
        };
        let key = page_dedup_key(42, &page, "dana", 2);
        assert_eq!(key, "incident:42:page:1:0:dana:2");
        assert_eq!(paged_incident(&key), Some(42));
        assert_eq!(paged_incident("test:dana:1:0"), None);
        assert_eq!(parse_reference("INC-42"), Some(42));
        assert_eq!(parse_reference("inc-7"), Some(7));
        assert_eq!(parse_reference("42"), Some(42));
        assert_eq!(parse_reference("INC-"), None);
        assert_eq!(parse_reference("0"), None);
        assert_eq!(parse_reference("-3"), None);
    }

    #[test]
    fn one_line_says_who_was_paged_how_at_which_step() {
        let page = Page {
            at: "2026-11-24T10:15:00Z".parse().unwrap(),
            pass: 0,
            step: 1,
            people: vec!["dana".into(), "eli".into(), "fran".into()],
        };
        assert_eq!(
            paged_text(
                &page,
                &[
                    ("dana", vec!["email", "sms"]),
                    ("eli", vec!["webhook"]),
                    ("fran", vec![])
                ]
            ),
            "Paged dana (email, sms), eli (webhook) and fran (no contact method): step 2 of pass 1"
        );
        assert_eq!(
            paged_text(&page, &[("dana", vec!["email"])]),
            "Paged dana (email): step 2 of pass 1"
        );
    }

    #[test]
    fn a_page_carries_number_title_service_counts_severity_and_link() {
        let page = Page {
            at: "2026-11-24T10:00:00Z".parse().unwrap(),
            pass: 0,
            step: 1,
            people: vec![],
        };
        let facts = PageFacts {
            number: "INC-3",
            title: "Printing fails",
            summary: "Still on the old key: org-04, org-05.",
            service: "Forms printing",
            severity: "critical",
            reported: 4,
            using: 11,
            incident_url: "https://m.test/incidents/3",
            ack_url: "https://m.test/ack/abc",
        };
        let (subject, body) = page_message(&facts, &page);
        assert_eq!(subject, "[CRITICAL] INC-3 Forms printing: Printing fails");
        for part in [
            "Printing fails\n\nStill on the old key: org-04, org-05.\n\nService: Forms printing",
            "4 reported, 11 use the service or what depends on it",
            "step 2 of pass 1",
            "https://m.test/ack/abc",
        ] {
            assert!(body.contains(part), "{body}");
        }
    }
}
