//! Who is on call: at an instant, and as final shifts over a range with the gaps
//! where nobody is.

use super::schedule::{Definition, Layer, Schedule};
use jiff::Timestamp;
use serde::Serialize;

/// Who is on call at an instant, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OnCall {
    pub person: String,
    /// The layer that put them on call (none when an override did on its own).
    pub layer: Option<String>,
    pub r#override: Option<String>,
}

/// A final shift: one person, `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shift {
    pub person: String,
    pub start: Timestamp,
    pub end: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gap {
    pub start: Timestamp,
    pub end: Timestamp,
}

/// The final shifts over a range and the gaps between them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shifts {
    pub shifts: Vec<Shift>,
    pub gaps: Vec<Gap>,
}

impl Schedule {
    /// Who the layers in force at `t` put on call: the last layer active there.
    fn layers_at(&self, t: Timestamp) -> Option<(&Layer, &str)> {
        self.definition_at(t).layer_at(t)
    }

    /// Who is on call at `t`, after overrides.
    pub fn oncall_at(&self, t: Timestamp) -> Option<OnCall> {
        let from_layers = self.layers_at(t);
        let layer_person = from_layers.map(|(_, p)| p);
        let applied = self.overrides.iter().rev().find(|o| {
            o.from <= t
                && t < o.to
                && o.replaces
                    .as_deref()
                    .is_none_or(|r| Some(r) == layer_person)
        });
        match (applied, from_layers) {
            (Some(o), layers) => Some(OnCall {
                person: o.person.clone(),
                layer: o.replaces.as_ref().and(layers.map(|(l, _)| l.name.clone())),
                r#override: Some(o.id.clone()),
            }),
            (None, Some((layer, person))) => Some(OnCall {
                person: person.to_string(),
                layer: Some(layer.name.clone()),
                r#override: None,
            }),
            (None, None) => None,
        }
    }

    /// Every instant in `[from, to)` where the answer may change: handoffs, `active`
    /// window edges, definition changes and override edges, plus `from` itself.
    fn breakpoints(&self, from: Timestamp, to: Timestamp) -> Vec<Timestamp> {
        let mut points = vec![from];
        for (definition, start, end) in self.spans(from, to) {
            points.push(start);
            definition.breakpoints(start, end, &mut points);
        }
        for o in &self.overrides {
            points.extend([o.from, o.to]);
        }
        points.retain(|p| from <= *p && *p < to);
        points.sort();
        points.dedup();
        points
    }
    /// The final shifts in `[from, to)`: after layers and overrides, clipped to the
    /// range, adjacent shifts of one person merged, and the gaps where nobody is.
    pub fn shifts(&self, from: Timestamp, to: Timestamp) -> Shifts {
        let mut out = Shifts {
            shifts: Vec::new(),
            gaps: Vec::new(),
        };
        if from >= to {
            return out;
        }
        let points = self.breakpoints(from, to);
        for (i, &start) in points.iter().enumerate() {
            let end = points.get(i + 1).copied().unwrap_or(to);
            match self.oncall_at(start) {
                Some(on) => match out.shifts.last_mut() {
                    Some(last) if last.end == start && last.person == on.person => last.end = end,
                    _ => out.shifts.push(Shift {
                        person: on.person,
                        start,
                        end,
                    }),
                },
                None => match out.gaps.last_mut() {
                    Some(last) if last.end == start => last.end = end,
                    _ => out.gaps.push(Gap { start, end }),
                },
            }
        }
        out
    }

    /// Each layer's own shifts in `[from, to)` (no overrides, no other layers),
    /// following the definitions in force: by layer name, in order of appearance.
    pub fn layer_shifts(&self, from: Timestamp, to: Timestamp) -> Vec<(String, Vec<Shift>)> {
        // Keyed by name and, for layers sharing a name, which of them it is.
        let mut rows: Vec<((&str, usize), Vec<Shift>)> = Vec::new();
        for (definition, start, end) in self.spans(from, to) {
            for (i, layer) in definition.layers.iter().enumerate() {
                let twin = definition.layers[..i]
                    .iter()
                    .filter(|l| l.name == layer.name)
                    .count();
                let key = (layer.name.as_str(), twin);
                let alone = Schedule {
                    id: self.id.clone(),
                    definitions: vec![Definition {
                        effective_from: None,
                        timezone: definition.timezone.clone(),
                        layers: vec![layer.clone()],
                    }],
                    overrides: Vec::new(),
                };
                let index = match rows.iter().position(|(k, _)| *k == key) {
                    Some(index) => index,
                    None => {
                        rows.push((key, Vec::new()));
                        rows.len() - 1
                    }
                };
                let row = &mut rows[index].1;
                for shift in alone.shifts(start, end).shifts {
                    match row.last_mut() {
                        Some(last) if last.end == shift.start && last.person == shift.person => {
                            last.end = shift.end
                        }
                        _ => row.push(shift),
                    }
                }
            }
        }
        rows.into_iter()
            .map(|((name, _), shifts)| (name.to_string(), shifts))
            .collect()
    }

    /// The end of the merged final shift in force at `t`: when the person on call now
    /// stops being on call. `None` when nobody is on call at `t`, or when they stay on
    /// call for at least a year (a one-person rotation).
    pub fn oncall_until(&self, t: Timestamp) -> Option<Timestamp> {
        let person = self.oncall_at(t)?.person;
        let week = jiff::SignedDuration::from_hours(24 * 7);
        let mut cursor = t;
        for _ in 0..53 {
            let end = cursor.checked_add(week).ok()?;
            let window = self.shifts(cursor, end);
            match window.shifts.first() {
                Some(first) if first.start == cursor && first.person == person => {
                    if first.end < end {
                        return Some(first.end);
                    }
                }
                _ => return Some(cursor),
            }
            cursor = end;
        }
        None
    }
}

impl Definition {
    /// The last of this definition's layers active at `t`, and whom it puts on call.
    fn layer_at(&self, t: Timestamp) -> Option<(&Layer, &str)> {
        let tz = &self.timezone;
        self.layers.iter().rev().find_map(|layer| {
            let k = layer.shift_index(tz, t)?;
            layer.is_active(tz, t).then(|| (layer, layer.member(k)))
        })
    }

    /// Adds the handoffs and `active` window edges in `[from, to)` (and a few just
    /// outside it) to `points`.
    fn breakpoints(&self, from: Timestamp, to: Timestamp, points: &mut Vec<Timestamp>) {
        let tz = &self.timezone;
        for layer in &self.layers {
            let mut k = layer.shift_index(tz, from).unwrap_or(-1) + 1;
            loop {
                let at = layer.handoff_at(tz, k.max(0));
                if at >= to {
                    break;
                }
                points.push(at);
                k = k.max(0) + 1;
            }
            if let Some(active) = &layer.active {
                // A window that started the day before may reach into the range.
                let from_day = from.to_zoned(tz.clone()).date();
                let first = from_day.yesterday().unwrap_or(from_day);
                let last = to.to_zoned(tz.clone()).date();
                let mut day = first;
                while day <= last {
                    if let Some((start, end)) = active.window(tz, day) {
                        points.extend([start, end]);
                    }
                    match day.tomorrow() {
                        Ok(next) => day = next,
                        Err(_) => break,
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed_schedule(id: &str) -> Schedule {
        let catalog = crate::catalog::seed_world();
        let value = catalog.schedules.iter().find(|s| s["id"] == id).unwrap();
        Schedule::from_json(value).unwrap()
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn who(schedule: &Schedule, t: &str) -> Option<String> {
        schedule.oncall_at(at(t)).map(|o| o.person)
    }

    #[test]
    fn weekly_rotation_hands_off_at_local_time_across_dst() {
        let s = seed_schedule("print-platform-primary"); // London, Mon 09:00, from 2026-11-02
        assert_eq!(
            who(&s, "2026-11-02T08:59:59Z"),
            None,
            "before the first shift nobody"
        );
        assert_eq!(who(&s, "2026-11-02T09:00:00Z").as_deref(), Some("dana"));
        assert_eq!(who(&s, "2026-11-09T09:00:00Z").as_deref(), Some("eli"));
        assert_eq!(who(&s, "2026-11-16T09:00:00Z").as_deref(), Some("fran"));
        assert_eq!(who(&s, "2026-11-23T09:00:00Z").as_deref(), Some("dana"));
        // After the spring change (29 March 2027) 09:00 London is 08:00 UTC.
        let week = |date: &str| who(&s, &format!("{date}T08:00:00Z"));
        let before = who(&s, "2027-03-29T07:59:59Z");
        assert_ne!(
            week("2027-03-29"),
            before,
            "the handoff happens at 09:00 BST = 08:00 UTC"
        );
    }

    #[test]
    fn a_later_active_layer_wins_inside_its_window() {
        let s = seed_schedule("service-desk-primary"); // daily 08:00 sam/tara/uma; weekdays 09:00-17:30 tara
        // Tuesday 2026-11-03 12:00 London: office hours → tara.
        assert_eq!(who(&s, "2026-11-03T12:00:00Z").as_deref(), Some("tara"));
        // Tuesday 18:00: daily layer, day index 1 → tara; Wednesday 18:00 → uma.
        assert_eq!(who(&s, "2026-11-04T18:00:00Z").as_deref(), Some("uma"));
        // Saturday noon: weekend, so the daily layer (its sixth day, index 5 → uma).
        assert_eq!(who(&s, "2026-11-07T12:00:00Z").as_deref(), Some("uma"));
        let on = s.oncall_at(at("2026-11-04T12:00:00Z")).unwrap();
        assert_eq!(on.layer.as_deref(), Some("weekday-office-hours"));
    }

    #[test]
    fn overrides_replace_only_their_person() {
        let s = seed_schedule("platform-primary"); // Stockholm weekly Mon 09:00 pia, pete; xmas: pia replaces pete
        // Week of 21 Dec 2026: index 7 → pete (odd). The override puts pia on.
        let on = s.oncall_at(at("2026-12-25T12:00:00Z")).unwrap();
        assert_eq!(
            (on.person.as_str(), on.r#override.as_deref()),
            ("pia", Some("xmas-swap"))
        );
        assert_eq!(
            who(&s, "2026-12-27T12:00:00Z").as_deref(),
            Some("pete"),
            "after the override"
        );
    }

    #[test]
    fn twelve_hour_rotation_keeps_wall_clock_handoffs() {
        let s = seed_schedule("hosting-primary"); // Dublin 12h at 07:00: hank, hiro
        assert_eq!(who(&s, "2026-11-02T07:00:00Z").as_deref(), Some("hank"));
        assert_eq!(who(&s, "2026-11-02T19:00:00Z").as_deref(), Some("hiro"));
        // Summer: 07:00 IST = 06:00 UTC.
        let summer = s.shifts(at("2027-06-01T00:00:00Z"), at("2027-06-02T00:00:00Z"));
        let starts: Vec<String> = summer
            .shifts
            .iter()
            .skip(1)
            .map(|x| x.start.to_string())
            .collect();
        assert_eq!(starts, ["2027-06-01T06:00:00Z", "2027-06-01T18:00:00Z"]);
    }

    #[test]
    fn shifts_merge_and_report_gaps() {
        let s = seed_schedule("print-platform-primary");
        let out = s.shifts(at("2026-11-01T00:00:00Z"), at("2026-11-10T00:00:00Z"));
        assert_eq!(
            out.gaps,
            vec![Gap {
                start: at("2026-11-01T00:00:00Z"),
                end: at("2026-11-02T09:00:00Z")
            }]
        );
        assert_eq!(out.shifts.len(), 2);
        assert_eq!(out.shifts[0].person, "dana");
        assert_eq!(
            out.shifts[1],
            Shift {
                person: "eli".into(),
                start: at("2026-11-09T09:00:00Z"),
                end: at("2026-11-10T00:00:00Z")
            }
        );
        assert_eq!(
            s.oncall_until(at("2026-11-03T00:00:00Z")),
            Some(at("2026-11-09T09:00:00Z"))
        );
        assert_eq!(
            s.oncall_until(at("2026-11-01T00:00:00Z")),
            None,
            "nobody is on call yet"
        );
        let ges = seed_schedule("ges-primary");
        // Weekly, so jared's shift from Mon 2 Nov 08:00 Chicago ends a week later.
        assert_eq!(
            ges.oncall_until(at("2026-11-04T12:00:00Z")),
            Some(at("2026-11-09T14:00:00Z"))
        );
    }

    #[test]
    fn handoffs_in_skipped_and_repeated_hours() {
        // 02:30 daily in New York: 2027-03-14 02:30 does not exist → 03:30 EDT (07:30Z);
        // 2026-11-01 01:30 happens twice → the earlier (EDT, 05:30Z).
        let spring = serde_json::json!({"id": "s", "timezone": "America/New_York", "layers": [
            {"name": "l", "rotation": "daily", "handoff": "02:30", "start": "2027-03-12", "members": ["a", "b"]}]});
        let s = Schedule::from_json(&spring).unwrap();
        assert_eq!(
            s.definitions[0].layers[0]
                .handoff_at(&s.definitions[0].timezone, 2)
                .to_string(),
            "2027-03-14T07:30:00Z"
        );
        let fall = serde_json::json!({"id": "f", "timezone": "America/New_York", "layers": [
            {"name": "l", "rotation": "daily", "handoff": "01:30", "start": "2026-10-31", "members": ["a", "b"]}]});
        let f = Schedule::from_json(&fall).unwrap();
        assert_eq!(
            f.definitions[0].layers[0]
                .handoff_at(&f.definitions[0].timezone, 1)
                .to_string(),
            "2026-11-01T05:30:00Z"
        );
    }

    #[test]
    fn a_revision_changes_the_future_and_keeps_the_past() {
        // Daily at 09:00 UTC: a, b. From 2027-01-10T12:00Z: c, d at 18:00 UTC.
        let first = serde_json::json!({"id": "r", "timezone": "UTC", "layers": [
            {"name": "day", "rotation": "daily", "handoff": "09:00", "start": "2027-01-01", "members": ["a", "b"]}]});
        let second = serde_json::json!({"id": "r", "timezone": "UTC", "layers": [
            {"name": "day", "rotation": "daily", "handoff": "18:00", "start": "2027-01-01", "members": ["c", "d"]}]});
        let change = at("2027-01-10T12:00:00Z");
        let s = Schedule::from_json(&second)
            .unwrap()
            .with_revisions(&[(None, first.clone()), (Some(change), second.clone())])
            .unwrap();
        // 2027-01-10 09:00 is handoff 9 of the first definition → b; just after the
        // change the second definition's shift 8 (from 01-09 18:00) → c.
        assert_eq!(who(&s, "2027-01-10T11:59:59Z").as_deref(), Some("b"));
        assert_eq!(who(&s, "2027-01-10T12:00:00Z").as_deref(), Some("c"));
        assert_eq!(
            who(&s, "2027-01-02T10:00:00Z").as_deref(),
            Some("b"),
            "the past"
        );
        let out = s.shifts(at("2027-01-10T00:00:00Z"), at("2027-01-11T00:00:00Z"));
        let got: Vec<(&str, String)> = out
            .shifts
            .iter()
            .map(|x| (x.person.as_str(), x.start.to_string()))
            .collect();
        assert_eq!(
            got,
            [
                ("a", "2027-01-10T00:00:00Z".to_string()),
                ("b", "2027-01-10T09:00:00Z".to_string()),
                ("c", "2027-01-10T12:00:00Z".to_string()),
                ("d", "2027-01-10T18:00:00Z".to_string()),
            ]
        );
        let rows = s.layer_shifts(at("2027-01-10T00:00:00Z"), at("2027-01-11T00:00:00Z"));
        assert_eq!(rows.len(), 1, "one row per layer name across definitions");
        assert_eq!(rows[0].1.len(), 4);
        // No revisions: the catalog's definition governs all time.
        let alone = Schedule::from_json(&second)
            .unwrap()
            .with_revisions(&[])
            .unwrap();
        assert_eq!(who(&alone, "2027-01-02T10:00:00Z").as_deref(), Some("c"));
        // The first definition governs before any change, whatever it declares.
        let mut declared = first.clone();
        declared["effective_from"] = "2027-01-05T00:00:00Z".into();
        let one = Schedule::from_json(&declared).unwrap();
        assert_eq!(who(&one, "2027-01-02T10:00:00Z").as_deref(), Some("b"));
    }

    #[test]
    fn bad_schedules_name_the_field() {
        let bad = serde_json::json!({"id": "b", "timezone": "Mars/Base", "layers": [
            {"name": "l", "rotation": "7h", "handoff": "9am", "start": "2026-13-01", "members": []}],
            "overrides": [{"person": "a", "from": "2026-12-02T00:00:00Z", "to": "2026-12-01T00:00:00Z"}],
            "effective_from": "next monday"});
        let err = Schedule::from_json(&bad).unwrap_err();
        let paths: Vec<&str> = err.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "timezone",
                "layers[0].rotation",
                "layers[0].start",
                "layers[0].members",
                "overrides[0].to",
                "effective_from"
            ]
        );
    }
}

#[cfg(test)]
mod properties {
    //! Shifts agree with a brute-force, minute-by-minute evaluation built on a naive
    //! walk of handoffs; they cover the range exactly once, with no overlaps.
    use super::*;
    use crate::oncall::schedule::{Active, Override, Rotation, instant};
    use jiff::ToSpan;
    use jiff::civil::{Date, Time, Weekday};
    use jiff::tz::TimeZone;
    use proptest::prelude::*;

    const ZONES: [&str; 6] = [
        "Europe/London",
        "America/New_York",
        "Australia/Sydney",
        "Asia/Kolkata",
        "America/Denver",
        "UTC",
    ];

    /// Who a layer puts on call at `t`, by walking handoffs one by one from the first.
    fn naive_layer(layer: &Layer, tz: &TimeZone, t: Timestamp) -> Option<String> {
        if t < layer.handoff_at(tz, 0) {
            return None;
        }
        let mut k = 0;
        while layer.handoff_at(tz, k + 1) <= t {
            k += 1;
        }
        let active = match &layer.active {
            None => true,
            Some(a) => {
                let mut day = t.to_zoned(tz.clone()).date().checked_sub(2.days()).unwrap();
                let mut inside = false;
                for _ in 0..4 {
                    let listed = a.days.is_empty() || a.days.contains(&day.weekday());
                    let end_day = if a.to <= a.from {
                        day.tomorrow().unwrap()
                    } else {
                        day
                    };
                    let (s, e) = (
                        instant(tz, day.to_datetime(a.from)),
                        instant(tz, end_day.to_datetime(a.to)),
                    );
                    inside |= listed && s <= t && t < e;
                    day = day.tomorrow().unwrap();
                }
                inside
            }
        };
        active.then(|| layer.member(k).to_string())
    }

    fn naive(s: &Schedule, t: Timestamp) -> Option<String> {
        // The definition in force: the last whose change happened by `t`.
        let mut definition = &s.definitions[0];
        for d in &s.definitions[1..] {
            if d.effective_from.unwrap() <= t {
                definition = d;
            }
        }
        let layers = definition
            .layers
            .iter()
            .rev()
            .find_map(|l| naive_layer(l, &definition.timezone, t));
        let mut person = layers.clone();
        for o in &s.overrides {
            if o.from <= t && t < o.to && (o.replaces.is_none() || o.replaces == layers) {
                person = Some(o.person.clone());
            }
        }
        person
    }

    fn layer() -> impl Strategy<Value = Layer> {
        let rotation = prop_oneof![
            prop::sample::select(vec![1i64, 2, 3, 4, 6, 8, 12]).prop_map(Rotation::Hours),
            (1i64..4).prop_map(Rotation::Days),
            (1i64..3).prop_map(Rotation::Weeks),
        ];
        let active = prop::option::of((
            prop::collection::vec(0i8..7, 0..4),
            0i8..24,
            0i8..4,
            0i8..24,
            0i8..4,
        ));
        (
            rotation,
            0i8..7,
            0i8..24,
            0i8..4,
            0i64..40,
            prop::collection::vec(0usize..4, 1..4),
            active,
        )
            .prop_map(
                |(rotation, day, hour, quarter, start_offset, members, active)| Layer {
                    name: format!("l{hour}"),
                    rotation,
                    handoff_day: Some(Weekday::from_monday_zero_offset(day).unwrap()),
                    handoff: Time::new(hour, quarter * 15, 0, 0).unwrap(),
                    // Around the 2027 spring changes and the 2026 autumn ones.
                    start: Date::new(2027, 2, 20)
                        .unwrap()
                        .checked_add(start_offset.days())
                        .unwrap(),
                    members: members.into_iter().map(|m| format!("p{m}")).collect(),
                    active: active.map(|(days, fh, fq, th, tq)| Active {
                        days: days
                            .into_iter()
                            .map(|d| Weekday::from_monday_zero_offset(d).unwrap())
                            .collect(),
                        from: Time::new(fh, fq * 15, 0, 0).unwrap(),
                        to: Time::new(th, tq * 15, 0, 0).unwrap(),
                    }),
                },
            )
    }

    fn schedule() -> impl Strategy<Value = Schedule> {
        let overrides = prop::collection::vec(
            (
                0usize..4,
                prop::option::of(0usize..4),
                0i64..(40 * 24),
                1i64..72,
            ),
            0..4,
        );
        // Up to three definitions, later ones taking over at random hours.
        let definitions = prop::collection::vec(
            (
                prop::sample::select(ZONES.to_vec()),
                prop::collection::vec(layer(), 1..4),
                0i64..(50 * 24),
            ),
            1..4,
        );
        (definitions, overrides).prop_map(|(definitions, overrides)| {
            let base: Timestamp = "2027-02-20T00:00:00Z".parse().unwrap();
            let mut definitions: Vec<Definition> = definitions
                .into_iter()
                .map(|(zone, layers, change_h)| Definition {
                    effective_from: Some(base.checked_add((change_h * 3600).seconds()).unwrap()),
                    timezone: TimeZone::get(zone).unwrap(),
                    layers,
                })
                .collect();
            definitions.sort_by_key(|d| d.effective_from);
            definitions[0].effective_from = None;
            Schedule {
                id: "p".into(),
                definitions,
                overrides: overrides
                    .into_iter()
                    .enumerate()
                    .map(|(i, (person, replaces, start_h, len_h))| {
                        let from = base.checked_add((start_h * 3600).seconds()).unwrap();
                        Override {
                            id: format!("o{i}"),
                            person: format!("p{person}"),
                            replaces: replaces.map(|r| format!("p{r}")),
                            from,
                            to: from.checked_add((len_h * 3600).seconds()).unwrap(),
                        }
                    })
                    .collect(),
            }
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]
        #[test]
        fn shifts_partition_the_range_and_match_brute_force(s in schedule(), start_h in 0i64..(50 * 24), len_h in 1i64..(5 * 24)) {
            let from = "2027-02-20T00:00:00Z".parse::<Timestamp>().unwrap().checked_add((start_h * 3600).seconds()).unwrap();
            let to = from.checked_add((len_h * 3600).seconds()).unwrap();
            let out = s.shifts(from, to);
            // Shifts and gaps tile [from, to) exactly.
            let mut pieces: Vec<(Timestamp, Timestamp, Option<&str>)> = out.shifts.iter().map(|x| (x.start, x.end, Some(x.person.as_str()))).collect();
            pieces.extend(out.gaps.iter().map(|g| (g.start, g.end, None)));
            pieces.sort_by_key(|p| p.0);
            prop_assert_eq!(pieces.first().map(|p| p.0), Some(from));
            prop_assert_eq!(pieces.last().map(|p| p.1), Some(to));
            for w in pieces.windows(2) {
                prop_assert_eq!(w[0].1, w[1].0, "contiguous, no overlap");
                prop_assert!(!(w[0].2 == w[1].2 && w[0].2.is_some() && out.shifts.iter().any(|x| x.end == w[1].0 && x.start == w[0].0)), "adjacent shifts of one person are merged");
            }
            for p in &pieces {
                prop_assert!(p.0 < p.1, "no empty pieces");
            }
            // Every minute agrees with the brute-force answer.
            let mut t = from;
            while t < to {
                let expected = naive(&s, t);
                let piece = pieces.iter().find(|p| p.0 <= t && t < p.1).unwrap();
                prop_assert_eq!(piece.2.map(str::to_owned), expected.clone(), "at {}", t);
                prop_assert_eq!(s.oncall_at(t).map(|o| o.person), expected, "oncall_at {}", t);
                t = t.checked_add(60.seconds()).unwrap();
            }
        }
    }
}
