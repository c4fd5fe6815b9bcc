{
  "targets": [
    {
      "target_name": "ferry_native",
      "sources": ["node/native/addon.c", "node/native/punch.c", "node/native/malloc.c", "node/native/gcm.c", "node/native/align.c", "node/native/heap.cc"],
      "cflags": ["-O2", "-Wall"]
    }
  ]
}
