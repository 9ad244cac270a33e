//! The pipeline as a graph: which step feeds which, which columns a step
//! takes, and the order and concurrency of execution.
//!
//! Ordering is Kahn's algorithm preferring declaration order among ready
//! steps, so a plan reads like its manifest, and a cycle is reported as the
//! path of step names that closes it. (A general graph crate's DFS
//! toposort gives neither; the whole algorithm is a few lines.)

/// Where a step's rows come from. Written as the manifest writes it:
/// `"source"` or a step id.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", from = "String")]
pub enum Input {
    /// The pipeline's input data (features only).
    Source,
    /// Another step's output.
    Step(String),
}

impl Input {
    pub fn parse(name: &str) -> Input {
        if name == "source" {
            Input::Source
        } else {
            Input::Step(name.to_string())
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Input::Source => "source",
            Input::Step(s) => s,
        }
    }
}

/// Execution order of steps given each step's inputs, or the cycle (as
/// step names, first repeated at the end) that prevents one.
pub fn order(ids: &[String], inputs: &[Vec<Input>]) -> Result<Vec<usize>, Vec<String>> {
    let index = |name: &str| ids.iter().position(|id| id == name);
    let deps: Vec<Vec<usize>> = inputs
        .iter()
        .map(|ins| {
            ins.iter()
                .filter_map(|i| match i {
                    Input::Step(s) => index(s),
                    Input::Source => None,
                })
                .collect()
        })
        .collect();
    let mut done = vec![false; ids.len()];
    let mut order = Vec::with_capacity(ids.len());
    while order.len() < ids.len() {
        let ready = (0..ids.len()).find(|&i| !done[i] && deps[i].iter().all(|d| done[*d]));
        match ready {
            Some(i) => {
                done[i] = true;
                order.push(i);
            }
            None => {
                // Every step left waits on another one left: walk the
                // waiting edges until a step repeats.
                let start = (0..ids.len()).find(|&i| !done[i]).unwrap_or(0);
                let mut path = vec![start];
                let mut at = start;
                while let Some(&next) = deps[at].iter().find(|d| !done[**d]) {
                    if let Some(pos) = path.iter().position(|p| *p == next) {
                        // `path` follows "takes input from" edges; the data
                        // flows the other way. Start at the earliest step.
                        let mut cycle: Vec<usize> = path[pos..].iter().rev().copied().collect();
                        let first = (0..cycle.len()).min_by_key(|k| cycle[*k]).unwrap_or(0);
                        cycle.rotate_left(first);
                        cycle.push(cycle[0]);
                        return Err(cycle.into_iter().map(|i| ids[i].clone()).collect());
                    }
                    path.push(next);
                    at = next;
                }
                return Err(vec![ids[start].clone()]);
            }
        }
    }
    Ok(order)
}

/// Groups steps (given in execution order) into waves: every step of a
/// wave depends only on earlier waves, so a wave's steps can run at once.
pub fn waves(ids: &[String], inputs: &[Vec<Input>]) -> Vec<Vec<usize>> {
    let mut depth = vec![0usize; ids.len()];
    for i in 0..ids.len() {
        depth[i] = inputs[i]
            .iter()
            .filter_map(|input| match input {
                Input::Step(s) => ids[..i].iter().position(|id| id == s).map(|j| depth[j] + 1),
                Input::Source => None,
            })
            .max()
            .unwrap_or(0);
    }
    let mut waves: Vec<Vec<usize>> = vec![Vec::new(); depth.iter().max().map_or(0, |d| d + 1)];
    for (i, d) in depth.into_iter().enumerate() {
        waves[d].push(i);
    }
    waves
}

impl From<Input> for String {
    fn from(input: Input) -> String {
        input.name().to_string()
    }
}

impl From<String> for Input {
    fn from(name: String) -> Input {
        Input::parse(&name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn step(name: &str) -> Input {
        Input::Step(name.into())
    }

    #[test]
    fn orders_by_dependencies_then_declaration() {
        let names = ids(&["model", "num", "cat"]);
        let inputs = vec![
            vec![step("num"), step("cat")],
            vec![Input::Source],
            vec![Input::Source],
        ];
        assert_eq!(order(&names, &inputs).unwrap(), [1, 2, 0]);
    }

    #[test]
    fn reports_the_cycle_by_name() {
        let names = ids(&["a", "b", "c"]);
        let inputs = vec![vec![step("c")], vec![step("a")], vec![step("b")]];
        assert_eq!(order(&names, &inputs).unwrap_err(), ["a", "b", "c", "a"]);
    }

    #[test]
    fn independent_branches_share_a_wave() {
        let names = ids(&["num", "cat", "model"]);
        let inputs = vec![
            vec![Input::Source],
            vec![Input::Source],
            vec![step("num"), step("cat")],
        ];
        assert_eq!(waves(&names, &inputs), [vec![0, 1], vec![2]]);
    }
}
