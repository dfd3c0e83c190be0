cmd_/work/main/test/vm/fault-fixture/modules.order := {   echo /work/main/test/vm/fault-fixture/fault_fixture.ko; :; } > /work/main/test/vm/fault-fixture/modules.order
