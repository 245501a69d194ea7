//! `drover-shim DIR`: the shim as its own small binary. The daemon uses it when it sits next to
//! the `drover` binary (a few hundred KB instead of the whole CLI: less resident memory per
//! task); otherwise it runs `drover shim DIR`, which is the same code.

fn main() {
    let all: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if all.first().is_some_and(|a| a == "jail") {
        std::process::exit(drover_shim::jail::main_args(&all[1..]));
    }
    let mut args = all.into_iter();
    match (args.next(), args.next()) {
        (Some(dir), None) => std::process::exit(drover_shim::run::run(std::path::Path::new(&dir))),
        _ => {
            eprintln!(
                "usage: drover-shim TASK_DIR | drover-shim jail … (started by the drover daemon)"
            );
            std::process::exit(2);
        }
    }
}
