//! Imports an interface no host provides: `host run` must name it and refuse.
wit_bindgen::generate!({
    inline: "
        package test:missing;
        interface nowhere { hello: func(); }
        world needs-nowhere { import nowhere; }
    ",
});

fn main() {
    test::missing::nowhere::hello();
}
