//! `appforge-shim`: an app's log process and the init of its namespace
//! (see [`appforge_daemon::confine::shim`]). `appforged` starts one per app
//! from the folder it is installed in; it is not run by hand. Only the
//! shim's code is linked in, so the many shims hold few pages.

fn main() {
    appforge_daemon::confine::shim::main()
}
