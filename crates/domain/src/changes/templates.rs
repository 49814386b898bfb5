//! Change templates: routine work described once and approved once by the owner
//! teams (catalog section `change_templates`). A standard change names one; fitting
//! it (its services, no longer than its maximum duration) and colliding with nothing,
//! it is pre-approved.

use super::Window;
use crate::catalog::Catalog;
use crate::clock::{format_duration, parse_duration};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeTemplate {
    pub id: String,
    pub title: String,
    pub services: Vec<String>,
    pub max_duration: SignedDuration,
    /// The owner-team member who approved the template.
    pub approved_by: String,
    pub approved_at: Option<Timestamp>,
}

impl ChangeTemplate {
    /// The catalog's templates (validated on import; an entry that does not read is
    /// skipped).
    pub fn of_catalog(catalog: &Catalog) -> Vec<ChangeTemplate> {
        #[derive(Deserialize)]
        struct Stored {
            id: String,
            title: String,
            services: Vec<String>,
            max_duration: String,
            approved_by: String,
            #[serde(default)]
            approved_at: Option<Timestamp>,
        }
        catalog
            .change_templates
            .iter()
            .filter_map(|value| serde_json::from_value::<Stored>(value.clone()).ok())
            .filter_map(|t| {
                Some(ChangeTemplate {
                    max_duration: parse_duration(&t.max_duration).ok()?,
                    id: t.id,
                    title: t.title,
                    services: t.services,
                    approved_by: t.approved_by,
                    approved_at: t.approved_at,
                })
            })
            .collect()
    }

    /// The catalog's template `id`, if it has one that reads.
    pub fn find(catalog: &Catalog, id: &str) -> Option<ChangeTemplate> {
        ChangeTemplate::of_catalog(catalog)
            .into_iter()
            .find(|t| t.id == id)
    }

    /// How a change's services and window do not fit the template: (field, why) each.
    pub fn misfits(&self, services: &[String], window: Window) -> Vec<(String, String)> {
        let mut found = Vec::new();
        for (i, service) in services.iter().enumerate() {
            if !self.services.contains(service) {
                found.push((
                    format!("services[{i}]"),
                    format!(
                        "{service:?} is not covered by template {:?} (it covers {})",
                        self.id,
                        self.services.join(", ")
                    ),
                ));
            }
        }
        let length = window.end.duration_since(window.start);
        if length > self.max_duration {
            found.push((
                "end".to_string(),
                format!(
                    "the window is {}, longer than template {:?} allows ({})",
                    format_duration(length),
                    self.id,
                    format_duration(self.max_duration)
                ),
            ));
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_fits_its_template_by_services_and_length() {
        let template = ChangeTemplate {
            id: "switch-patch".into(),
            title: "Patch the phone switch".into(),
            services: vec!["phone-switch".into()],
            max_duration: SignedDuration::from_hours(4),
            approved_by: "rita".into(),
            approved_at: None,
        };
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        let window = |hours| Window {
            start: at("2026-11-25T10:00:00Z"),
            end: at("2026-11-25T10:00:00Z") + SignedDuration::from_hours(hours),
        };
        assert!(
            template
                .misfits(&["phone-switch".into()], window(3))
                .is_empty()
        );
        let wrong = template.misfits(&["phone-switch".into(), "ges".into()], window(5));
        assert_eq!(wrong.len(), 2, "{wrong:?}");
        assert_eq!(wrong[0].0, "services[1]");
        assert_eq!(wrong[1].0, "end");
        assert!(
            wrong[1]
                .1
                .contains("5h, longer than template \"switch-patch\" allows (4h)")
        );
    }
}
