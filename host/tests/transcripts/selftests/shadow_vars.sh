# tools/testing/selftests/livepatch/test-shadow-vars.sh, step by step: "basic shadow variable
# API". test_klp_shadow_vars exercises klp_shadow_get, klp_shadow_alloc,
# klp_shadow_get_or_alloc, klp_shadow_free and klp_shadow_free_all in its init, pointers printed
# as PTR<n>. The one difference from Linux's expected log: size=4, a pointer on wasm32.
dmesg -C
insmod test_klp_shadow_vars
rmmod test_klp_shadow_vars
dmesg
