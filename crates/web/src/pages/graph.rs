//! A service's neighbourhood drawn as SVG, server-side: what it needs on the left, what
//! needs it on the right, one column per hop, arrows from a dependency to its dependent.

use muster_domain::catalog::graph::{Reach, ServiceGraph};
use std::collections::HashMap;

pub const DEPTH: u32 = 2;
const MAX_PER_COLUMN: usize = 12;
const NODE_WIDTH: i32 = 190;
const COLUMN_GAP: i32 = 60;
const ROW_HEIGHT: i32 = 38;
const TOP: i32 = 30;

pub struct GraphView {
    pub width: i32,
    pub height: i32,
    pub depth: u32,
    pub node_width: i32,
    pub columns: Vec<ColumnView>,
    pub nodes: Vec<NodeView>,
    pub edges: Vec<EdgeView>,
}

pub struct ColumnView {
    pub x: i32,
    pub label: String,
}

pub struct NodeView {
    pub id: String,
    pub name: String,
    pub label: String,
    pub x: i32,
    pub y: i32,
    pub focus: bool,
}

pub struct EdgeView {
    pub x1: i32,
    pub y1: i32,
    pub x2: i32,
    pub y2: i32,
    pub cx: i32,
}

fn shorten(text: &str) -> String {
    if text.chars().count() > 24 {
        format!("{}…", text.chars().take(23).collect::<String>())
    } else {
        text.to_string()
    }
}

/// A column: its hop (negative for dependencies), the services shown (id, name), and
/// how many there are in all.
type Column = (i32, Vec<(String, String)>, usize);

/// Lays out `id`'s neighbourhood; `None` when the service is unknown.
pub fn neighbourhood(graph: &ServiceGraph, id: &str, name: &str) -> Option<GraphView> {
    let dependencies = graph.dependencies(id)?;
    let dependents = graph.impact(id)?.dependents;
    // Column index: -DEPTH..=DEPTH, dependencies negative.
    let mut columns: Vec<Column> = Vec::new();
    let pick = |reached: &[Reach], distance: u32| -> (Vec<(String, String)>, usize) {
        let all: Vec<&Reach> = reached.iter().filter(|r| r.distance == distance).collect();
        let shown = all
            .iter()
            .take(MAX_PER_COLUMN)
            .map(|r| (r.service.clone(), r.name.clone()))
            .collect();
        (shown, all.len())
    };
    for d in (1..=DEPTH).rev() {
        let (shown, total) = pick(&dependencies, d);
        columns.push((-(d as i32), shown, total));
    }
    columns.push((0, vec![(id.to_string(), name.to_string())], 1));
    for d in 1..=DEPTH {
        let (shown, total) = pick(&dependents, d);
        columns.push((d as i32, shown, total));
    }
    // Drop empty outer columns so the picture stays compact.
    columns.retain(|(c, shown, _)| *c == 0 || !shown.is_empty());

    let tallest = columns
        .iter()
        .map(|(_, shown, total)| shown.len() + usize::from(*total > shown.len()))
        .max()
        .unwrap_or(1) as i32;
    let height = TOP + tallest * ROW_HEIGHT + 10;
    let mut nodes = Vec::new();
    let mut column_views = Vec::new();
    let mut position: HashMap<String, (i32, i32, i32)> = HashMap::new(); // id -> (column, x, y)
    for (i, (column, shown, total)) in columns.iter().enumerate() {
        let x = 10 + i as i32 * (NODE_WIDTH + COLUMN_GAP);
        let label = match column {
            0 => "this service".to_string(),
            c if *c < 0 => {
                if *c == -1 {
                    "needs".into()
                } else {
                    format!("needs ({} hops)", -c)
                }
            }
            c => {
                if *c == 1 {
                    "needed by".into()
                } else {
                    format!("needed by ({c} hops)")
                }
            }
        };
        column_views.push(ColumnView { x, label });
        let offset = (tallest - shown.len() as i32) * ROW_HEIGHT / 2;
        for (row, (sid, sname)) in shown.iter().enumerate() {
            let y = TOP + offset + row as i32 * ROW_HEIGHT;
            position.insert(sid.clone(), (*column, x, y));
            nodes.push(NodeView {
                id: sid.clone(),
                name: sname.clone(),
                label: shorten(sname),
                x,
                y,
                focus: *column == 0,
            });
        }
        if *total > shown.len() {
            let y = TOP + offset + shown.len() as i32 * ROW_HEIGHT;
            nodes.push(NodeView {
                id: id.to_string(),
                name: format!("{} more", total - shown.len()),
                label: format!("+{} more", total - shown.len()),
                x,
                y,
                focus: false,
            });
        }
    }
    let mut edges = Vec::new();
    for (dependent, &(col, x, y)) in &position {
        for dependency in graph.direct_dependencies(dependent) {
            if let Some(&(dcol, dx, dy)) = position.get(&dependency)
                && dcol == col - 1
            {
                let (x1, y1, x2, y2) = (dx + NODE_WIDTH, dy + 14, x, y + 14);
                edges.push(EdgeView {
                    x1,
                    y1,
                    x2,
                    y2,
                    cx: (x1 + x2) / 2,
                });
            }
        }
    }
    edges.sort_by_key(|e| (e.x1, e.y1, e.y2));
    let width = 20 + columns.len() as i32 * (NODE_WIDTH + COLUMN_GAP) - COLUMN_GAP;
    Some(GraphView {
        width,
        height,
        depth: DEPTH,
        node_width: NODE_WIDTH,
        columns: column_views,
        nodes,
        edges,
    })
}
