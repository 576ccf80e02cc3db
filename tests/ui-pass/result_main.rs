// `fn main() -> Result<(), E>` keeps working, `?` and early `return` included.
use std::num::ParseIntError;

#[daemon_runtime::daemon(ready = "manual", name = "result-main", core_dumps = true, shutdown = "exit", control = false)]
fn main() -> Result<(), ParseIntError> {
    let n: u32 = "42".parse()?;
    daemon_runtime::ready();
    if n == 42 {
        return Ok(());
    }
    Ok(())
}
