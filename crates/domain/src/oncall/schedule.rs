//! The schedule model. Semantics (from `seed-world.yaml`, the format's contract):
//!
//! - A layer's first shift starts at `start` + `handoff` (for weekly rotations, the first
//!   handoff weekday on or after `start`) and belongs to `members[0]`; before it the
//!   layer is inactive. Rotations are `daily`, `weekly`, `Nh` (N divides 24; handoffs
//!   at `handoff` + k·N hours of wall-clock time), `Nd` or `Nw` (calendar units).
//! - Handoffs are wall-clock times in the schedule's zone: one in a skipped (DST) hour
//!   moves forward by the gap; one in a repeated hour takes the earlier occurrence.
//! - `active` limits a layer to windows starting on `days` at `from` and ending at `to`
//!   (exclusive; on the next day when `to` <= `from`). No `days` means every day.
//! - A later layer wins wherever it is active and has someone.
//! - An override with `replaces` applies only while the layers would put that person
//!   on call; without it, its person is the only one on call for its window. Later
//!   overrides win over earlier ones.

use crate::catalog::parse::from_value;
use crate::problem::FieldErrors;
use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Schedule {
    pub id: String,
    /// Oldest first, never empty: the first is in force from the beginning (its
    /// layers' `start` dates govern), each later one from its `effective_from`.
    pub definitions: Vec<Definition>,
    pub overrides: Vec<Override>,
}

/// One definition of a schedule's layers. Editing a schedule adds one rather than
/// rewriting the past.
#[derive(Debug, Clone)]
pub struct Definition {
    /// When this definition takes over from the one before (ignored on the first).
    pub effective_from: Option<Timestamp>,
    pub timezone: TimeZone,
    pub layers: Vec<Layer>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// N hours of wall-clock time, N dividing 24.
    Hours(i64),
    /// N calendar days.
    Days(i64),
    /// N calendar weeks.
    Weeks(i64),
}

#[derive(Debug, Clone)]
pub struct Layer {
    pub name: String,
    pub rotation: Rotation,
    /// The weekday of the handoff, for weekly rotations.
    pub handoff_day: Option<Weekday>,
    pub handoff: Time,
    pub start: Date,
    pub members: Vec<String>,
    pub active: Option<Active>,
}

/// Windows in which a layer applies.
#[derive(Debug, Clone)]
pub struct Active {
    /// Days a window starts on; every day when empty.
    pub days: Vec<Weekday>,
    pub from: Time,
    pub to: Time,
}

#[derive(Debug, Clone)]
pub struct Override {
    pub id: String,
    pub person: String,
    pub replaces: Option<String>,
    pub from: Timestamp,
    pub to: Timestamp,
}

/// Resolves a wall-clock time in `tz`: forward by the gap in a skipped hour, the
/// earlier occurrence in a repeated hour.
pub fn instant(tz: &TimeZone, at: DateTime) -> Timestamp {
    tz.to_ambiguous_timestamp(at)
        .compatible()
        .unwrap_or(Timestamp::MAX)
}

impl Layer {
    /// The civil date-time of the first handoff.
    fn first(&self) -> DateTime {
        let date = match (self.rotation, self.handoff_day) {
            (Rotation::Weeks(_), Some(day)) => self
                .start
                .checked_add((self.start.weekday().until(day) as i64).days())
                .unwrap_or(self.start),
            _ => self.start,
        };
        date.to_datetime(self.handoff)
    }

    /// The wall-clock time of handoff `k` (k = 0 is the first).
    pub fn handoff_civil(&self, k: i64) -> Option<DateTime> {
        let first = self.first();
        match self.rotation {
            Rotation::Hours(n) => first.checked_add((k * n).hours()).ok(),
            Rotation::Days(n) => first
                .date()
                .checked_add((k * n).days())
                .ok()
                .map(|d| d.to_datetime(self.handoff)),
            Rotation::Weeks(n) => first
                .date()
                .checked_add((k * n * 7).days())
                .ok()
                .map(|d| d.to_datetime(self.handoff)),
        }
    }

    /// The instant of handoff `k`.
    pub fn handoff_at(&self, tz: &TimeZone, k: i64) -> Timestamp {
        self.handoff_civil(k)
            .map(|dt| instant(tz, dt))
            .unwrap_or(Timestamp::MAX)
    }

    /// The nominal length of a shift in seconds, for estimating which shift is current.
    fn nominal_seconds(&self) -> i64 {
        match self.rotation {
            Rotation::Hours(n) => n * 3600,
            Rotation::Days(n) => n * 86_400,
            Rotation::Weeks(n) => n * 7 * 86_400,
        }
    }

    /// The shift in force at `t`: the largest `k` whose handoff is at or before `t`
    /// (`None` before the first handoff). Shifts emptied by a DST gap are skipped.
    pub fn shift_index(&self, tz: &TimeZone, t: Timestamp) -> Option<i64> {
        let first = self.handoff_at(tz, 0);
        if t < first {
            return None;
        }
        let mut k = (t.as_second() - first.as_second()) / self.nominal_seconds();
        // The estimate is off by at most a step or two around DST changes.
        while k > 0 && self.handoff_at(tz, k) > t {
            k -= 1;
        }
        while self.handoff_at(tz, k + 1) <= t {
            k += 1;
        }
        Some(k)
    }

    pub fn member(&self, k: i64) -> &str {
        &self.members[k.rem_euclid(self.members.len() as i64) as usize]
    }

    /// Whether the layer's `active` restriction covers `t`.
    pub fn is_active(&self, tz: &TimeZone, t: Timestamp) -> bool {
        let Some(active) = &self.active else {
            return true;
        };
        let today = t.to_zoned(tz.clone()).date();
        [today.yesterday().ok(), Some(today)]
            .into_iter()
            .flatten()
            .any(|day| {
                active
                    .window(tz, day)
                    .is_some_and(|(start, end)| start <= t && t < end)
            })
    }
}

impl Active {
    /// The window starting on `day`, if the restriction has one that day.
    pub fn window(&self, tz: &TimeZone, day: Date) -> Option<(Timestamp, Timestamp)> {
        if !self.days.is_empty() && !self.days.contains(&day.weekday()) {
            return None;
        }
        let end_day = if self.to <= self.from {
            day.tomorrow().ok()?
        } else {
            day
        };
        Some((
            instant(tz, day.to_datetime(self.from)),
            instant(tz, end_day.to_datetime(self.to)),
        ))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleDoc {
    id: String,
    timezone: String,
    layers: Vec<LayerDoc>,
    #[serde(default)]
    overrides: Vec<OverrideDoc>,
    #[serde(default)]
    effective_from: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LayerDoc {
    name: String,
    rotation: String,
    handoff: String,
    start: String,
    members: Vec<String>,
    active: Option<ActiveDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActiveDoc {
    #[serde(default)]
    days: Vec<String>,
    from: String,
    to: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OverrideDoc {
    id: Option<String>,
    person: String,
    replaces: Option<String>,
    from: String,
    to: String,
}

const WEEKDAYS: [(&str, Weekday); 7] = [
    ("Mon", Weekday::Monday),
    ("Tue", Weekday::Tuesday),
    ("Wed", Weekday::Wednesday),
    ("Thu", Weekday::Thursday),
    ("Fri", Weekday::Friday),
    ("Sat", Weekday::Saturday),
    ("Sun", Weekday::Sunday),
];

fn weekday(name: &str) -> Option<Weekday> {
    WEEKDAYS.iter().find(|(n, _)| *n == name).map(|(_, d)| *d)
}

/// `HH:MM`.
pub fn wall_clock(text: &str) -> Option<Time> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    Time::new(h.parse().ok()?, m.parse().ok()?, 0, 0).ok()
}

pub fn rotation(text: &str) -> Result<Rotation, String> {
    match text {
        "daily" => return Ok(Rotation::Days(1)),
        "weekly" => return Ok(Rotation::Weeks(1)),
        _ => {}
    }
    let (count, unit) = text.split_at(text.len().saturating_sub(1));
    match (count.parse::<i64>(), unit) {
        (Ok(n), "h") if n > 0 && 24 % n == 0 => Ok(Rotation::Hours(n)),
        (Ok(n), "h") if n > 0 => Err(format!("{n}h does not divide 24 hours")),
        (Ok(n), "d") if (1..=366).contains(&n) => Ok(Rotation::Days(n)),
        (Ok(n), "w") if (1..=53).contains(&n) => Ok(Rotation::Weeks(n)),
        _ => Err(format!(
            "{text:?} is not a rotation: use daily, weekly, Nh, Nd or Nw"
        )),
    }
}

/// The handoff: `HH:MM`, with a weekday for weekly rotations (`Mon 09:00`).
pub fn handoff(text: &str, rotation: Rotation) -> Result<(Option<Weekday>, Time), String> {
    let (day, time) = match text.split_once(' ') {
        Some((day, time)) => (
            Some(weekday(day).ok_or_else(|| format!("{day:?} is not a day (Mon … Sun)"))?),
            time,
        ),
        None => (None, text),
    };
    if matches!(rotation, Rotation::Weeks(_)) && day.is_none() {
        return Err(format!(
            "{text:?}: a weekly handoff names a day, e.g. \"Mon 09:00\""
        ));
    }
    let time = wall_clock(time).ok_or_else(|| format!("{time:?} is not a time (HH:MM)"))?;
    Ok((day, time))
}

impl Schedule {
    /// Reads a schedule as stored in the catalog, naming the field of any problem.
    pub fn from_json(value: &Value) -> Result<Schedule, FieldErrors> {
        let doc: ScheduleDoc = from_value(value.clone())?;
        let mut errors = FieldErrors::default();
        let timezone = TimeZone::get(&doc.timezone).unwrap_or_else(|_| {
            errors.push("timezone", format!("unknown timezone {:?}", doc.timezone));
            TimeZone::UTC
        });
        let mut layers = Vec::new();
        for (i, l) in doc.layers.into_iter().enumerate() {
            let at = |f: &str| format!("layers[{i}].{f}");
            let rotation = rotation(&l.rotation)
                .map_err(|e| errors.push(at("rotation"), e))
                .ok();
            let handoff = rotation.and_then(|r| {
                handoff(&l.handoff, r)
                    .map_err(|e| errors.push(at("handoff"), e))
                    .ok()
            });
            let start = l
                .start
                .parse::<Date>()
                .map_err(|_| {
                    errors.push(
                        at("start"),
                        format!("{:?} is not a date (YYYY-MM-DD)", l.start),
                    )
                })
                .ok();
            if l.members.is_empty() {
                errors.push(at("members"), "a layer needs at least one member");
            }
            let active = match l.active {
                None => None,
                Some(a) => {
                    let days: Vec<Weekday> = a
                        .days
                        .iter()
                        .enumerate()
                        .filter_map(|(d, name)| {
                            weekday(name).or_else(|| {
                                errors.push(
                                    at(&format!("active.days[{d}]")),
                                    format!("{name:?} is not a day (Mon … Sun)"),
                                );
                                None
                            })
                        })
                        .collect();
                    let from = wall_clock(&a.from).or_else(|| {
                        errors.push(
                            at("active.from"),
                            format!("{:?} is not a time (HH:MM)", a.from),
                        );
                        None
                    });
                    let to = wall_clock(&a.to).or_else(|| {
                        errors.push(at("active.to"), format!("{:?} is not a time (HH:MM)", a.to));
                        None
                    });
                    from.zip(to).map(|(from, to)| Active { days, from, to })
                }
            };
            if let (Some(rotation), Some((handoff_day, handoff)), Some(start)) =
                (rotation, handoff, start)
            {
                layers.push(Layer {
                    name: l.name,
                    rotation,
                    handoff_day,
                    handoff,
                    start,
                    members: l.members,
                    active,
                });
            }
        }
        if layers.is_empty() && errors.is_empty() {
            errors.push("layers", "a schedule needs at least one layer");
        }
        let mut overrides = Vec::new();
        for (i, o) in doc.overrides.into_iter().enumerate() {
            let at = |f: &str| format!("overrides[{i}].{f}");
            let from = o
                .from
                .parse::<Timestamp>()
                .map_err(|_| {
                    errors.push(
                        at("from"),
                        format!("{:?} is not an RFC 3339 instant", o.from),
                    )
                })
                .ok();
            let to =
                o.to.parse::<Timestamp>()
                    .map_err(|_| {
                        errors.push(at("to"), format!("{:?} is not an RFC 3339 instant", o.to))
                    })
                    .ok();
            if let (Some(from), Some(to)) = (from, to) {
                if from >= to {
                    errors.push(at("to"), "must be after from");
                    continue;
                }
                let id =
                    o.id.unwrap_or_else(|| override_id(&o.person, o.replaces.as_deref(), from, to));
                overrides.push(Override {
                    id,
                    person: o.person,
                    replaces: o.replaces,
                    from,
                    to,
                });
            }
        }
        let effective_from = doc.effective_from.and_then(|text| {
            text.parse::<Timestamp>()
                .map_err(|_| {
                    errors.push(
                        "effective_from",
                        format!("{text:?} is not an RFC 3339 instant"),
                    )
                })
                .ok()
        });
        errors.into_result(Schedule {
            id: doc.id,
            definitions: vec![Definition {
                effective_from,
                timezone,
                layers,
            }],
            overrides,
        })
    }

    /// The schedule with its recorded definitions (oldest first, each a stored
    /// schedule document and the instant it took effect) in place of the catalog's
    /// one. No revisions: the catalog's definition is the only one.
    pub fn with_revisions(
        mut self,
        revisions: &[(Option<Timestamp>, Value)],
    ) -> Result<Schedule, FieldErrors> {
        if revisions.is_empty() {
            return Ok(self);
        }
        let mut definitions = Vec::with_capacity(revisions.len());
        for (effective_from, body) in revisions {
            let mut parsed = Schedule::from_json(body)?;
            let mut definition = parsed.definitions.remove(0);
            definition.effective_from = *effective_from;
            definitions.push(definition);
        }
        definitions.sort_by_key(|d| d.effective_from);
        self.definitions = definitions;
        Ok(self)
    }

    /// The definition in force at `t`.
    pub fn definition_at(&self, t: Timestamp) -> &Definition {
        self.definitions
            .iter()
            .skip(1)
            .rev()
            .find(|d| d.effective_from.is_none_or(|from| from <= t))
            .unwrap_or(&self.definitions[0])
    }

    /// Each definition with the part of `[from, to)` it governs, in order.
    pub fn spans(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Vec<(&Definition, Timestamp, Timestamp)> {
        let mut spans = Vec::new();
        for (i, definition) in self.definitions.iter().enumerate() {
            let start = if i == 0 {
                Timestamp::MIN
            } else {
                definition.effective_from.unwrap_or(Timestamp::MIN)
            };
            let end = self.definitions[i + 1..]
                .iter()
                .find_map(|d| d.effective_from)
                .unwrap_or(Timestamp::MAX);
            let (start, end) = (start.max(from), end.min(to));
            if start < end {
                spans.push((definition, start, end));
            }
        }
        spans
    }
}

/// An override's id derived from its content, when the document gives none.
pub fn override_id(person: &str, replaces: Option<&str>, from: Timestamp, to: Timestamp) -> String {
    use sha2::{Digest, Sha256};
    let text = format!(
        "{person}|{}|{}|{}",
        replaces.unwrap_or(""),
        from.as_second(),
        to.as_second()
    );
    format!(
        "ovr-{}",
        &hex::encode(Sha256::digest(text.as_bytes()))[..12]
    )
}
