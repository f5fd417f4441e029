use super::*;

#[test]
fn probe() {
    for t in [
        "[daemon]\nportals = [\"127.0.0.1:3260\"]\nbogus = 1\n",
        "[daemon]\nmax_connections = \"x\"\n",
        "[backstores.a]\nkind = \"fileio\"\npath = \"/x\"\n[targets.\"iqn.2026-11.org.e:t\"]\nluns = [\n { lun = 0 },\n]\n",
        "[backstores.a]\nkind = \"fileioo\"\n",
        "[backstores.a]\nkind = \"fileio\"\nsize = \"1X\"\n",
        "[daemon]\nportals = [\"nope\"]\n",
        "[daemon\nportals = 1\n",
        "[daemon]\nportals = [1,\n",
        "[targets.\"iqn.2026-11.org.e:t\"]\n[[targets.\"iqn.2026-11.org.e:t\".luns]]\nbackstore = \"a\"\n[[targets.\"iqn.2026-11.org.e:t\".luns]]\nbackstorex = \"a\"\n",
    ] {
        println!("{:?}", parse_all(t, "f").err());
    }
}
