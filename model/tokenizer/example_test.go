package tokenizer_test

import (
	"fmt"

	"github.com/gearbox-inference/gearbox/model/tokenizer"
)

func Example() {
	// A model directory with tokenizer.json (and tokenizer_config.json,
	// generation_config.json beside it).
	tk, err := tokenizer.Load("testdata/tiny")
	if err != nil {
		panic(err)
	}
	ids := tk.Encode("the cafe\u0301", true)
	fmt.Println(ids, tk.AddsBOS(), tk.StopIDs())

	// Stream the ids back as a model would generate them: a character cut
	// across tokens comes out whole, once its last byte has arrived.
	d := tk.NewDecoder(true)
	for _, id := range tk.Encode("你好", false) {
		s, _ := d.Add(id)
		fmt.Printf("%d→%q ", id, s)
	}
	fmt.Printf("%q\n", d.Flush())
	// Output:
	// [289 116 257 32 285 290] true [290 291]
	// 287→"你" 229→"" 165→"" 189→"好" ""
}
