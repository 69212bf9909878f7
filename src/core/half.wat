;; float32 → float16 bits, round to nearest even, four lanes at a time (WebAssembly SIMD): core/half.ts's toHalf
;; runs its F16 conversions here, in chunks copied into this module's memory. The same bits as f32BitsToF16 for
;; every input but NaN payloads (a NaN stays a NaN: 0x7e00 with its sign, as f32BitsToF16 gives). Assembled by
;; test/stream.test.ts with wabt, which checks that the bytes embedded in half.ts are this file's.
(module
  (memory (export "memory") 1)

  ;; Four float32s (as bits) → four float16s (as bits, in the low 16 bits of each lane). Every lane computes the
  ;; three cases and keeps the one its magnitude `a` falls in:
  ;; - normal halves, 2^-14 ≤ |x| < 2^16: the exponent rebiased and the mantissa rounded in one integer add (round
  ;;   bit + sticky bits + the kept lsb carry as rounding should; 65520 and up carry into Infinity);
  ;; - |x| ≥ 2^16, Infinity and NaN: Infinity, or NaN (0x7e00) — that add gives 0x7c00 or more for all of them
  ;;   (and for 65520 up), so the smaller of the two is the half either way;
  ;; - subnormal halves and zeros, |x| < 2^-14: |x| + 0.5 in float32 puts |x| · 2^24 rounded to nearest even in
  ;;   the low mantissa bits (0.5's ulp is 2^-24, a half subnormal's step), minus 0.5's bits.
  (func $f16x4 (param $x v128) (result v128)
    (local $a v128) (local $normal v128) (local $small v128) (local $large v128)
    (local.set $a (v128.and (local.get $x) (i32x4.splat (i32.const 0x7fffffff))))
    (local.set $normal
      (i32x4.shr_u
        (i32x4.add
          (i32x4.sub (local.get $a) (i32x4.splat (i32.const 0x37fff001)))
          (v128.and (i32x4.shr_u (local.get $a) (i32.const 13)) (i32x4.splat (i32.const 1))))
        (i32.const 13)))
    (local.set $small
      (i32x4.sub
        (f32x4.add (local.get $a) (f32x4.splat (f32.const 0.5)))
        (i32x4.splat (i32.const 0x3f000000))))
    (local.set $large
      (v128.bitselect
        (i32x4.splat (i32.const 0x7e00))
        (i32x4.splat (i32.const 0x7c00))
        (i32x4.gt_u (local.get $a) (i32x4.splat (i32.const 0x7f800000)))))
    (v128.or
      (v128.and (i32x4.shr_u (local.get $x) (i32.const 16)) (i32x4.splat (i32.const 0x8000)))
      (v128.bitselect
        (local.get $small)
        (i32x4.min_u (local.get $normal) (local.get $large))
        (i32x4.lt_u (local.get $a) (i32x4.splat (i32.const 0x38800000))))))

  ;; n float32s at byte offset src → n float16s at byte offset dst; n a multiple of 8 (two lanes of four narrowed
  ;; into one of eight: every value is at most 0xfe00, so the unsigned saturation never clips). Eight +0s are
  ;; stored as they are: a causal model's probabilities are +0 above the diagonal, half of a long input's values
  ;; (9.4 instead of 15.5 ms for 16.8 M of them here; 2% slower with no zeros).
  (func (export "f16") (param $src i32) (param $dst i32) (param $n i32)
    (local $end i32) (local $x v128) (local $y v128)
    (local.set $end (i32.add (local.get $src) (i32.shl (local.get $n) (i32.const 2))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
        (local.set $x (v128.load (local.get $src)))
        (local.set $y (v128.load offset=16 (local.get $src)))
        (v128.store
          (local.get $dst)
          (if (result v128) (v128.any_true (v128.or (local.get $x) (local.get $y)))
            (then (i16x8.narrow_i32x4_u (call $f16x4 (local.get $x)) (call $f16x4 (local.get $y))))
            (else (v128.const i32x4 0 0 0 0))))
        (local.set $src (i32.add (local.get $src) (i32.const 32)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
        (br $next))))
)
