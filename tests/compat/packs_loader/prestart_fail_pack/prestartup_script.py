raise RuntimeError("prestart_fail_pack's prestartup refuses")
