//! The service dependency graph: what breaks if a service breaks (its transitive
//! dependents, the teams that own them, the organisations that use them) and what a
//! service needs (its transitive dependencies). Built once per catalog version.

use super::model::Catalog;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};

/// Index-based adjacency over the catalog's services; unknown ids are ignored so the
/// graph can also be built over an unvalidated document (for cycle detection).
#[derive(Debug, Clone, Default)]
pub struct ServiceGraph {
    ids: Vec<String>,
    names: Vec<String>,
    owners: Vec<String>,
    index: HashMap<String, usize>,
    depends_on: Vec<Vec<usize>>,
    dependents: Vec<Vec<usize>>,
    /// For each service, the organisations (by index into `orgs`) that use it.
    users: Vec<Vec<usize>>,
    orgs: Vec<(String, String)>,
}

/// A service reached from another, `distance` hops away along `path` (both ends included).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reach {
    pub service: String,
    pub name: String,
    pub owner: String,
    pub distance: u32,
    pub path: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TeamImpact {
    pub team: String,
    /// The broken or affected services this team owns.
    pub services: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrganisationImpact {
    pub id: String,
    pub name: String,
    /// The broken or affected services this organisation uses.
    pub via: Vec<String>,
}

/// What breaks if `service` breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Impact {
    pub service: String,
    /// Every transitive dependent, nearest first.
    pub dependents: Vec<Reach>,
    /// Owner teams of the service and of every dependent.
    pub teams: Vec<TeamImpact>,
    /// Organisations that use the service or any dependent.
    pub organisations: Vec<OrganisationImpact>,
}

impl ServiceGraph {
    pub fn new(catalog: &Catalog) -> ServiceGraph {
        let mut graph = ServiceGraph::default();
        for service in &catalog.services {
            // The first declaration wins; duplicates are reported by validation.
            if graph.index.contains_key(&service.id) {
                continue;
            }
            graph.index.insert(service.id.clone(), graph.ids.len());
            graph.ids.push(service.id.clone());
            graph.names.push(service.name.clone());
            graph.owners.push(service.owner.clone());
        }
        let n = graph.ids.len();
        graph.depends_on = vec![Vec::new(); n];
        graph.dependents = vec![Vec::new(); n];
        graph.users = vec![Vec::new(); n];
        for service in &catalog.services {
            let from = graph.index[&service.id];
            if !graph.depends_on[from].is_empty() {
                continue; // a duplicate id: keep the first declaration's edges
            }
            for dep in &service.depends_on {
                if let Some(&to) = graph.index.get(dep)
                    && !graph.depends_on[from].contains(&to)
                {
                    graph.depends_on[from].push(to);
                    graph.dependents[to].push(from);
                }
            }
        }
        for org in &catalog.organisations {
            let o = graph.orgs.len();
            graph.orgs.push((org.id.clone(), org.name.clone()));
            for used in &org.uses {
                if let Some(&s) = graph.index.get(used)
                    && !graph.users[s].contains(&o)
                {
                    graph.users[s].push(o);
                }
            }
        }
        graph
    }

    /// The owner team of `id`.
    pub fn owner(&self, id: &str) -> Option<&str> {
        self.index.get(id).map(|&i| self.owners[i].as_str())
    }

    /// What breaks when `services` break: their transitive dependents that are not among
    /// them, each once, nearest first per service in turn.
    pub fn dependents_of(&self, services: &[&str]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for &id in services {
            let Some(&start) = self.index.get(id) else {
                continue;
            };
            for reach in self.reach(start, &self.dependents) {
                if !services.contains(&reach.service.as_str()) && !out.contains(&reach.service) {
                    out.push(reach.service);
                }
            }
        }
        out
    }

    /// The organisations (ids, sorted) hit when `services` break: those using one of
    /// them or anything that depends on one.
    pub fn organisations_affected(&self, services: &[&str]) -> Vec<String> {
        let dependents = self.dependents_of(services);
        let mut broken = services.to_vec();
        broken.extend(dependents.iter().map(String::as_str));
        self.organisations_using(&broken)
    }

    /// Direct dependents of `id` (services that depend on it), sorted.
    pub fn direct_dependents(&self, id: &str) -> Vec<String> {
        self.neighbours(id, &self.dependents)
    }

    /// Direct dependencies of `id`, sorted.
    pub fn direct_dependencies(&self, id: &str) -> Vec<String> {
        self.neighbours(id, &self.depends_on)
    }

    fn neighbours(&self, id: &str, edges: &[Vec<usize>]) -> Vec<String> {
        let mut out: Vec<String> = self
            .index
            .get(id)
            .map(|&i| edges[i].iter().map(|&j| self.ids[j].clone()).collect())
            .unwrap_or_default();
        out.sort();
        out
    }

    /// The organisations (ids, sorted) that use any of `services` directly.
    pub fn organisations_using(&self, services: &[&str]) -> Vec<String> {
        let mut out: Vec<String> = services
            .iter()
            .filter_map(|id| self.index.get(*id))
            .flat_map(|&s| self.users[s].iter().map(|&o| self.orgs[o].0.clone()))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Transitive dependencies of `id`, nearest first; `None` for an unknown service.
    pub fn dependencies(&self, id: &str) -> Option<Vec<Reach>> {
        let start = *self.index.get(id)?;
        Some(self.reach(start, &self.depends_on))
    }

    /// What breaks if `id` breaks; `None` for an unknown service.
    pub fn impact(&self, id: &str) -> Option<Impact> {
        let start = *self.index.get(id)?;
        let dependents = self.reach(start, &self.dependents);
        let affected: Vec<usize> = std::iter::once(start)
            .chain(dependents.iter().map(|r| self.index[&r.service]))
            .collect();

        let mut teams: Vec<TeamImpact> = Vec::new();
        let mut team_slot: HashMap<&str, usize> = HashMap::new();
        let mut org_via: Vec<Vec<String>> = vec![Vec::new(); self.orgs.len()];
        for &s in &affected {
            let owner = self.owners[s].as_str();
            let slot = *team_slot.entry(owner).or_insert_with(|| {
                teams.push(TeamImpact {
                    team: owner.to_string(),
                    services: Vec::new(),
                });
                teams.len() - 1
            });
            teams[slot].services.push(self.ids[s].clone());
            for &o in &self.users[s] {
                org_via[o].push(self.ids[s].clone());
            }
        }
        teams.sort_by(|a, b| a.team.cmp(&b.team));
        let mut organisations: Vec<OrganisationImpact> = org_via
            .into_iter()
            .enumerate()
            .filter(|(_, via)| !via.is_empty())
            .map(|(o, via)| OrganisationImpact {
                id: self.orgs[o].0.clone(),
                name: self.orgs[o].1.clone(),
                via,
            })
            .collect();
        organisations.sort_by(|a, b| a.id.cmp(&b.id));
        Some(Impact {
            service: id.to_string(),
            dependents,
            teams,
            organisations,
        })
    }

    /// The services within `hops` of `id` that work on it can collide with, nearest
    /// first: paths that go only up (dependents), only down (dependencies), or up and
    /// then down (two services serving a common dependent, like a phone switch and an
    /// application behind one portal). Paths that go down and then up — two services
    /// that merely share a dependency — do not count. Empty for an unknown service.
    pub fn neighbourhood(&self, id: &str, hops: u32) -> Vec<Reach> {
        let Some(&start) = self.index.get(id) else {
            return Vec::new();
        };
        // A walk is in one of two phases: still allowed to go up, or only down.
        const UP: usize = 0;
        const DOWN: usize = 1;
        let n = self.ids.len();
        let mut parent: Vec<[Option<(usize, usize)>; 2]> = vec![[None; 2]; n];
        let mut seen = vec![[false; 2]; n];
        seen[start] = [true; 2];
        let mut first: Vec<Option<(u32, usize)>> = vec![None; n];
        let mut queue = VecDeque::from([(start, UP, 0u32)]);
        while let Some((at, phase, distance)) = queue.pop_front() {
            if distance == hops {
                continue;
            }
            let mut steps: Vec<(usize, usize)> =
                self.depends_on[at].iter().map(|&m| (m, DOWN)).collect();
            if phase == UP {
                steps.extend(self.dependents[at].iter().map(|&m| (m, UP)));
            }
            steps.sort_by(|a, b| self.ids[a.0].cmp(&self.ids[b.0]).then(a.1.cmp(&b.1)));
            for (next, next_phase) in steps {
                if seen[next][next_phase] {
                    continue;
                }
                seen[next][next_phase] = true;
                parent[next][next_phase] = Some((at, phase));
                if first[next].is_none() && next != start {
                    first[next] = Some((distance + 1, next_phase));
                }
                queue.push_back((next, next_phase, distance + 1));
            }
        }
        let mut out: Vec<Reach> = (0..n)
            .filter_map(|m| first[m].map(|found| (m, found)))
            .map(|(m, (distance, phase))| {
                let mut path = vec![self.ids[m].clone()];
                let mut at = (m, phase);
                while let Some(previous) = parent[at.0][at.1] {
                    path.push(self.ids[previous.0].clone());
                    at = previous;
                }
                path.reverse();
                Reach {
                    service: self.ids[m].clone(),
                    name: self.names[m].clone(),
                    owner: self.owners[m].clone(),
                    distance,
                    path,
                }
            })
            .collect();
        out.sort_by(|a, b| {
            a.distance
                .cmp(&b.distance)
                .then_with(|| a.service.cmp(&b.service))
        });
        out
    }

    /// Breadth-first walk from `start` along `edges`: each service reached once, at its
    /// shortest distance, with the path that reached it. Ties are broken by id so the
    /// answer is the same on every run.
    fn reach(&self, start: usize, edges: &[Vec<usize>]) -> Vec<Reach> {
        let mut parent: Vec<Option<usize>> = vec![None; self.ids.len()];
        let mut distance: Vec<u32> = vec![u32::MAX; self.ids.len()];
        distance[start] = 0;
        let mut queue = VecDeque::from([start]);
        let mut order = Vec::new();
        while let Some(at) = queue.pop_front() {
            let mut next: Vec<usize> = edges[at]
                .iter()
                .copied()
                .filter(|&n| distance[n] == u32::MAX)
                .collect();
            next.sort_by(|&a, &b| self.ids[a].cmp(&self.ids[b]));
            for n in next {
                distance[n] = distance[at] + 1;
                parent[n] = Some(at);
                order.push(n);
                queue.push_back(n);
            }
        }
        let mut out: Vec<Reach> = order
            .into_iter()
            .map(|n| {
                let mut path = vec![self.ids[n].clone()];
                let mut at = n;
                while let Some(p) = parent[at] {
                    path.push(self.ids[p].clone());
                    at = p;
                }
                path.reverse();
                Reach {
                    service: self.ids[n].clone(),
                    name: self.names[n].clone(),
                    owner: self.owners[n].clone(),
                    distance: distance[n],
                    path,
                }
            })
            .collect();
        out.sort_by(|a, b| {
            a.distance
                .cmp(&b.distance)
                .then_with(|| a.service.cmp(&b.service))
        });
        out
    }

    /// Every dependency cycle, each once, as the ids along it with the first repeated
    /// at the end (`a -> b -> a` is `["a", "b", "a"]`).
    pub fn cycles(&self) -> Vec<Vec<String>> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            OnStack,
            Done,
        }
        let n = self.ids.len();
        let mut mark = vec![Mark::New; n];
        let mut cycles = Vec::new();
        for root in 0..n {
            if mark[root] != Mark::New {
                continue;
            }
            // Iterative DFS: (node, next edge index); `stack` is the current path.
            let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
            mark[root] = Mark::OnStack;
            while let Some(&mut (node, ref mut edge)) = stack.last_mut() {
                if let Some(&next) = self.depends_on[node].get(*edge) {
                    *edge += 1;
                    match mark[next] {
                        Mark::New => {
                            mark[next] = Mark::OnStack;
                            stack.push((next, 0));
                        }
                        Mark::OnStack => {
                            let from = stack.iter().position(|&(s, _)| s == next).unwrap_or(0);
                            let mut cycle: Vec<String> = stack[from..]
                                .iter()
                                .map(|&(s, _)| self.ids[s].clone())
                                .collect();
                            cycle.push(self.ids[next].clone());
                            cycles.push(cycle);
                        }
                        Mark::Done => {}
                    }
                } else {
                    mark[node] = Mark::Done;
                    stack.pop();
                }
            }
        }
        cycles
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::model::{Organisation, Service};

    fn service(id: &str, owner: &str, deps: &[&str]) -> Service {
        Service {
            id: id.into(),
            name: id.to_uppercase(),
            owner: owner.into(),
            tier: None,
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
            public: false,
            external: false,
            runbook: None,
            description: None,
            incidents: None,
        }
    }

    fn catalog(services: Vec<Service>, orgs: &[(&str, &[&str])]) -> Catalog {
        Catalog {
            services,
            organisations: orgs
                .iter()
                .map(|(id, uses)| Organisation {
                    id: id.to_string(),
                    name: id.to_string(),
                    uses: uses.iter().map(|u| u.to_string()).collect(),
                })
                .collect(),
            ..Catalog::default()
        }
    }

    #[test]
    fn the_neighbourhood_goes_up_down_or_up_then_down_but_never_down_then_up() {
        // portal -> (switch, ges); ges -> identity; api -> identity; client -> api
        let c = catalog(
            vec![
                service("portal", "cc", &["switch", "ges"]),
                service("switch", "cc", &[]),
                service("ges", "gt", &["identity"]),
                service("identity", "plat", &[]),
                service("api", "plat", &["identity"]),
                service("client", "desk", &["api"]),
            ],
            &[],
        );
        let g = ServiceGraph::new(&c);
        let near = |id: &str, hops: u32| -> Vec<(String, u32, Vec<String>)> {
            g.neighbourhood(id, hops)
                .into_iter()
                .map(|r| (r.service, r.distance, r.path))
                .collect()
        };
        let path = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // Siblings behind one portal are two hops apart: up, then down.
        assert_eq!(
            near("switch", 2),
            vec![
                ("portal".into(), 1, path(&["switch", "portal"])),
                ("ges".into(), 2, path(&["switch", "portal", "ges"])),
            ]
        );
        // ges and api merely share identity (down, then up): not neighbours.
        let ges = near("ges", 2);
        assert!(ges.iter().any(|(s, d, _)| s == "identity" && *d == 1));
        assert!(ges.iter().any(|(s, d, _)| s == "switch" && *d == 2));
        assert!(!ges.iter().any(|(s, _, _)| s == "api" || s == "client"));
        // Only down from the top; only up from the bottom.
        assert_eq!(
            near("client", 3)
                .iter()
                .map(|r| r.0.as_str())
                .collect::<Vec<_>>(),
            ["api", "identity"],
            "down only: client -> api -> identity; nothing shares a dependent with client"
        );
        assert_eq!(near("switch", 1).len(), 1, "hops bound the walk");
        assert!(near("nowhere", 2).is_empty());
    }

    #[test]
    fn impact_walks_dependents_with_shortest_paths() {
        // portal -> (switch, ges); ges -> identity; api -> identity; client -> api
        let c = catalog(
            vec![
                service("portal", "cc", &["switch", "ges"]),
                service("switch", "cc", &[]),
                service("ges", "gt", &["identity"]),
                service("identity", "plat", &[]),
                service("api", "plat", &["identity"]),
                service("client", "desk", &["api"]),
            ],
            &[
                ("acme", &["client"]),
                ("resv", &["portal"]),
                ("idle", &["switch"]),
            ],
        );
        let g = ServiceGraph::new(&c);
        let impact = g.impact("identity").unwrap();
        let got: Vec<(&str, u32, String)> = impact
            .dependents
            .iter()
            .map(|r| (r.service.as_str(), r.distance, r.path.join(">")))
            .collect();
        assert_eq!(
            got,
            vec![
                ("api", 1, "identity>api".into()),
                ("ges", 1, "identity>ges".into()),
                ("client", 2, "identity>api>client".into()),
                ("portal", 2, "identity>ges>portal".into()),
            ]
        );
        let teams: Vec<&str> = impact.teams.iter().map(|t| t.team.as_str()).collect();
        assert_eq!(teams, ["cc", "desk", "gt", "plat"]);
        let orgs: Vec<&str> = impact.organisations.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(
            orgs,
            ["acme", "resv"],
            "idle uses only the unaffected switch"
        );
        assert!(g.impact("nope").is_none());
    }

    #[test]
    fn dependencies_are_transitive_with_distance() {
        let c = catalog(
            vec![
                service("a", "t", &["b"]),
                service("b", "t", &["c"]),
                service("c", "t", &[]),
            ],
            &[],
        );
        let g = ServiceGraph::new(&c);
        let deps: Vec<(String, u32)> = g
            .dependencies("a")
            .unwrap()
            .into_iter()
            .map(|r| (r.service, r.distance))
            .collect();
        assert_eq!(deps, vec![("b".into(), 1), ("c".into(), 2)]);
        assert_eq!(g.direct_dependents("b"), ["a"]);
        assert_eq!(g.direct_dependencies("a"), ["b"]);
    }

    #[test]
    fn cycles_are_named_once() {
        let c = catalog(
            vec![
                service("a", "t", &["b"]),
                service("b", "t", &["a"]),
                service("c", "t", &["c"]),
                service("d", "t", &["a"]),
            ],
            &[],
        );
        let cycles = ServiceGraph::new(&c).cycles();
        assert_eq!(cycles, vec![vec!["a", "b", "a"], vec!["c", "c"]]);
    }

    #[test]
    fn an_acyclic_graph_has_no_cycles() {
        let c = catalog(
            vec![
                service("a", "t", &["b", "c"]),
                service("b", "t", &["c"]),
                service("c", "t", &[]),
            ],
            &[],
        );
        assert!(ServiceGraph::new(&c).cycles().is_empty());
    }

    #[test]
    fn what_breaks_with_a_service_and_whom_it_hits() {
        // forms -> identity, licence; api -> identity; client -> api
        let c = catalog(
            vec![
                service("forms", "print", &["identity", "licence"]),
                service("licence", "print", &[]),
                service("identity", "plat", &[]),
                service("api", "plat", &["identity"]),
                service("client", "desk", &["api"]),
            ],
            &[("a", &["forms"]), ("b", &["client"]), ("c", &["licence"])],
        );
        let g = ServiceGraph::new(&c);
        assert_eq!(g.dependents_of(&["identity"]), ["api", "forms", "client"]);
        assert_eq!(g.organisations_affected(&["identity"]), ["a", "b"]);
        // A service already named is not its own dependent; unknown ones add nothing.
        assert_eq!(
            g.dependents_of(&["api", "client", "nope"]),
            Vec::<String>::new()
        );
        assert_eq!(g.organisations_affected(&["licence"]), ["a", "c"]);
    }
}
