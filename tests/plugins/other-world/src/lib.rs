//! `other-world`: a plugin made to be refused, for the host's tests.
//!
//! A perfectly valid WebAssembly component — of the wrong world. It exports a
//! `greet` function from its own WIT (`wit/greeter.wit`) instead of
//! `prism:projection/projection`, so it demonstrates that the host validates
//! what a component implements before running it, reports why it refused it,
//! and keeps any previous generation of the plugin serving.

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({
        world: "greeter",
        path: "wit",
    });

    struct Greeter;

    impl Guest for Greeter {
        fn greet(name: String) -> String {
            format!("hello, {name}")
        }
    }

    export!(Greeter);
}
