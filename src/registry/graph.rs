//! Boot order: a topological sort that keeps declaration order where the
//! dependencies allow, and reports every cycle with the edges that form it.

/// `edges[i]` lists `(j, field)`: entry `i` depends on entry `j` through
/// `field`. Returns indices with dependencies first, or the cycles found, each
/// as `(entry, field that points to the next entry)`.
pub(crate) fn topological_order(
    edges: &[Vec<(usize, String)>],
) -> Result<Vec<usize>, Vec<Vec<(usize, String)>>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let n = edges.len();
    let mut marks = vec![Mark::New; n];
    let mut order = Vec::with_capacity(n);
    let mut cycles = Vec::new();
    // Iterative DFS: (node, next edge index); `path` mirrors the active stack.
    for root in 0..n {
        if marks[root] != Mark::New {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        marks[root] = Mark::Active;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some((dep, _)) = edges[node].get(*next) {
                *next += 1;
                let dep = *dep;
                match marks[dep] {
                    Mark::New => {
                        marks[dep] = Mark::Active;
                        stack.push((dep, 0));
                    }
                    Mark::Active => {
                        let start = stack.iter().position(|(v, _)| *v == dep).unwrap_or(0);
                        let cycle = stack[start..]
                            .iter()
                            .map(|(v, e)| (*v, edges[*v][e - 1].1.clone()))
                            .collect();
                        cycles.push(cycle);
                    }
                    Mark::Done => {}
                }
            } else {
                marks[node] = Mark::Done;
                order.push(node);
                stack.pop();
            }
        }
    }
    if cycles.is_empty() {
        Ok(order)
    } else {
        Err(cycles)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(deps: &[usize]) -> Vec<(usize, String)> {
        deps.iter().map(|d| (*d, format!("to{d}"))).collect()
    }

    #[test]
    fn dependencies_come_first() {
        let order = topological_order(&[e(&[1]), e(&[2]), e(&[])]).unwrap();
        assert_eq!(order, vec![2, 1, 0]);
    }

    #[test]
    fn declaration_order_is_kept_when_free() {
        let order = topological_order(&[e(&[]), e(&[]), e(&[0])]).unwrap();
        assert_eq!(order, vec![0, 1, 2]);
    }

    #[test]
    fn a_cycle_is_reported_with_its_edges() {
        let cycles = topological_order(&[e(&[1]), e(&[0]), e(&[])]).unwrap_err();
        assert_eq!(
            cycles,
            vec![vec![(0, "to1".to_string()), (1, "to0".to_string())]]
        );
    }
}
