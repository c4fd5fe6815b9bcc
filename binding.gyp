{
  "targets": [
    {
      "target_name": "ferry_native",
      "sources": ["node/native/punch.c"],
      "cflags": ["-O2", "-Wall"]
    }
  ]
}
