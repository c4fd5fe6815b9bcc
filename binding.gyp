{
  "targets": [
    {
      "target_name": "ferry_native",
      "sources": ["common/native/addon.c", "common/native/punch.c", "common/native/malloc.c", "common/native/gcm.c", "common/native/align.c", "common/native/heap.cc"],
      "cflags": ["-O2", "-Wall"]
    }
  ]
}
