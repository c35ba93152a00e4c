//! The names of the database threads, so that a service's threads can be told from another's
//! in one process (`shopctl up`): in `top -H`, in `perf`, and in `shopctl bench`'s CPU figures.

/// The prefix of the database threads' names for `service`: its name's first word, or that
/// word's first three letters when it is longer than five (`order-api` → `order`,
/// `payment-svc` → `pay`, `inventory-svc` → `inv`). Linux keeps 15 bytes of a thread's name,
/// and `-db-write` takes nine of them, with room for a digit.
pub fn thread_prefix(service: &str) -> String {
    let word = service.split('-').next().unwrap_or_default();
    if word.len() > 5 {
        word.chars().take(3).collect()
    } else {
        word.to_owned()
    }
}

/// The name of a database thread of `kind` (`write`, `read`, `ckpt`): `order-db-write`, or
/// `order-db-write0`, `order-db-write1` … when there are several of the kind.
pub(super) fn thread_name(prefix: &str, kind: &str, n: usize, of: usize) -> String {
    let mut name = if prefix.is_empty() {
        format!("db-{kind}")
    } else {
        format!("{prefix}-db-{kind}")
    };
    if of > 1 {
        name.push_str(&n.to_string());
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_service_has_a_short_prefix() {
        assert_eq!(thread_prefix("order-api"), "order");
        assert_eq!(thread_prefix("payment-svc"), "pay");
        assert_eq!(thread_prefix("inventory-svc"), "inv");
        assert_eq!(thread_prefix("psp-sim"), "psp");
    }

    #[test]
    fn names_fit_in_linux_fifteen_bytes() {
        assert_eq!(thread_name("order", "write", 0, 1), "order-db-write");
        assert_eq!(thread_name("pay", "read", 1, 2), "pay-db-read1");
        assert_eq!(thread_name("", "ckpt", 0, 1), "db-ckpt");
        for service in ["order-api", "payment-svc", "inventory-svc"] {
            let name = thread_name(&thread_prefix(service), "write", 9, 10);
            assert!(name.len() <= 15, "{name}");
        }
    }
}
